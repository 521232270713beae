//! `tessera-admin verify TOKEN [--jwks URL|FILE] [--issuer URL] [--audience AUD] [--json]`:
//! checks an access token offline with the shared verifier, exactly as a
//! resource server would, and prints its claims or the check it failed.
//!
//! It needs no admin socket: the keys come from the JWKS URL (default: the
//! server on its default address) or a JWKS file.

use std::io::{Read as _, Write};

use tessera_shared::claims::AccessTokenClaims;
use tessera_shared::verify::Verifier;

use super::args::VerifyArgs;
use super::{Error, output, print, print_json};

/// Runs `verify`.
///
/// # Errors
/// [`Error::VerifySetup`] if the keys cannot be loaded or the issuer is
/// unknown, [`Error::InvalidToken`] if the token fails a check,
/// [`Error::Output`] if printing fails.
pub async fn run(args: VerifyArgs, out: &mut dyn Write) -> Result<(), Error> {
    let token = if args.token == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::VerifySetup(format!("cannot read the token from standard input: {e}")))?;
        text.trim().to_owned()
    } else {
        args.token.trim().to_owned()
    };
    let is_url = args.jwks.starts_with("http://") || args.jwks.starts_with("https://");
    let issuer = match (args.issuer, is_url) {
        (Some(issuer), _) => issuer,
        (None, true) => origin(&args.jwks),
        (None, false) => {
            return Err(Error::VerifySetup("--issuer is required when --jwks is a file".into()));
        }
    };
    let audience = args.audience.unwrap_or_else(|| issuer.clone());
    let verifier = if is_url {
        Verifier::from_jwks_url(&args.jwks, &issuer, &audience).await
    } else {
        Verifier::from_jwks_file(&args.jwks, &issuer, &audience)
    }
    .map_err(|e| Error::VerifySetup(e.to_string()))?;
    let claims = verifier.verify_async(&token).await.map_err(|e| {
        let check = e.check();
        Error::InvalidToken(e, check)
    })?;
    if args.json { print_json(out, &claims) } else { print(out, &claims_text(&claims)) }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => url[..after_scheme + slash].to_owned(),
        None => url.to_owned(),
    }
}

fn claims_text(claims: &AccessTokenClaims) -> String {
    let mut text = String::from("The token is valid.\n");
    let mut line = |k: &str, v: &str| text.push_str(&format!("  {k:<10} {}\n", output::clean(v)));
    line("iss:", &claims.iss);
    line("sub:", &claims.sub);
    line("client_id:", &claims.client_id);
    line("aud:", &claims.aud);
    line("scope:", claims.scope.as_deref().unwrap_or("(none)"));
    line("iat:", &output::timestamp(claims.iat));
    line("exp:", &output::timestamp(claims.exp));
    line("jti:", &claims.jti);
    if let Some(jkt) = claims.dpop_jkt() {
        // RFC 9449: only a request with a DPoP proof by this key may use it.
        line("cnf.jkt:", &format!("{jkt} (DPoP-bound: usable only with a proof of this key)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dpop_binding_is_printed_when_present() {
        let mut claims = AccessTokenClaims {
            iss: "https://i".into(),
            sub: "c".into(),
            aud: "https://a".into(),
            exp: 2,
            iat: 1,
            jti: "j".into(),
            client_id: "c".into(),
            scope: None,
            cnf: None,
        };
        assert!(!claims_text(&claims).contains("cnf.jkt"));
        claims.cnf =
            Some(tessera_shared::claims::Confirmation { jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into() });
        assert!(claims_text(&claims).contains("  cnf.jkt:   0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I (DPoP-bound"));
    }

    #[test]
    fn origin_is_scheme_host_and_port() {
        assert_eq!(origin("http://127.0.0.1:8080/.well-known/jwks.json"), "http://127.0.0.1:8080");
        assert_eq!(origin("https://auth.example.com"), "https://auth.example.com");
    }
}
