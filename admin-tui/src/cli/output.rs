//! What the commands print: aligned tables and `key: value` lines for people,
//! JSON for scripts. Pure functions from answers to text, so they are tested
//! without a server.
//!
//! Text that came from the server (names, scopes, messages) passes through
//! [`clean`] first: a client name holding an escape sequence must not be able
//! to repaint the operator's terminal.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use serde::Serialize;
use tessera_shared::admin::{
    AuthMethod, ClientCredentials, ClientInfo, Deleted, FamiliesRevoked, KeyInfo, KeyRotation, KeyState,
    RotationOutcome,
};

/// `value` as pretty-printed JSON and a newline: one object or array that
/// `jq` and friends read as is.
///
/// # Errors
///
/// Only if `value` cannot be represented as JSON, which the admin types
/// always can.
pub fn json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// The client list as a table, one client a row. Secrets are not part of
/// [`ClientInfo`], so none can appear.
pub fn clients_table(clients: &[ClientInfo]) -> String {
    if clients.is_empty() {
        return "no clients\n".to_owned();
    }
    let rows = clients.iter().map(|c| {
        vec![
            clean(&c.client_id).into_owned(),
            clean(&c.name).into_owned(),
            c.status.to_string(),
            if c.scopes.is_empty() { "-".to_owned() } else { clean(&c.scopes.join(",")).into_owned() },
            yes_no(c.refresh_tokens).to_owned(),
            timestamp(c.created_at),
            c.last_used_at.map_or_else(|| "never".to_owned(), timestamp),
        ]
    });
    table(&["CLIENT ID", "NAME", "STATUS", "SCOPES", "REFRESH", "CREATED", "LAST USED"], rows)
}

/// One client as `key: value` lines. Never a secret: [`ClientInfo`] has none.
pub fn client_details(client: &ClientInfo) -> String {
    let mut lines = vec![
        ("client ID", clean(&client.client_id).into_owned()),
        ("name", clean(&client.name).into_owned()),
        ("status", client.status.to_string()),
        ("scopes", scopes(&client.scopes)),
        ("refresh tokens", yes_no(client.refresh_tokens).to_owned()),
        ("access-token ttl", access_token_ttl(client.access_token_ttl_seconds)),
        ("audiences", audiences(&client.audiences)),
        ("DPoP", dpop(client.require_dpop).to_owned()),
        ("created", timestamp(client.created_at)),
        ("last used", client.last_used_at.map_or_else(|| "never".to_owned(), timestamp)),
        ("authentication", client.auth_method.to_string()),
    ];
    if client.auth_method == AuthMethod::PrivateKeyJwt {
        lines.push(("key thumbprints", thumbprints(&client.key_thumbprints)));
    } else {
        lines.push(("secret set", timestamp(client.secret_set_at)));
        lines.push(("secret", secret_state(client.secret_expires_at, now_unix())));
        lines.push((
            "previous secret",
            client.previous_secret_valid_until.map_or_else(
                || "none".to_owned(),
                |until| format!("still accepted until {} (end of the grace period)", timestamp(until)),
            ),
        ));
    }
    lines.push(("active refresh families", client.active_refresh_families.to_string()));
    key_values(&lines)
}

/// RFC 7638 thumbprints of a client's public keys.
fn thumbprints(thumbprints: &[String]) -> String {
    thumbprints.iter().map(|t| clean(t).into_owned()).collect::<Vec<_>>().join(" ")
}

/// A client's access-token lifetime, or that it uses the server's.
fn access_token_ttl(seconds: Option<u64>) -> String {
    seconds.map_or_else(|| "the server's".to_owned(), |s| format!("{s} s"))
}

/// Whether a client's token requests need a DPoP proof.
fn dpop(required: bool) -> &'static str {
    if required { "required (every access token is bound to the client's key)" } else { "optional" }
}

/// A client's audiences, the default first, or that it uses the server's.
fn audiences(audiences: &[String]) -> String {
    if audiences.is_empty() {
        return "the server's".to_owned();
    }
    audiences.iter().map(|a| clean(a).into_owned()).collect::<Vec<_>>().join(" ")
}

/// Freshly issued credentials, with the warning that this is the only time
/// the secret is shown.
pub fn credentials(creds: &ClientCredentials) -> String {
    let keys = creds.auth_method == AuthMethod::PrivateKeyJwt;
    let mut lines = vec![("client ID", clean(&creds.client_id).into_owned())];
    if keys {
        lines.push(("authentication", creds.auth_method.to_string()));
        lines.push(("key thumbprints", thumbprints(&creds.key_thumbprints)));
    } else {
        lines.push(("client secret", clean(&creds.client_secret).into_owned()));
    }
    lines.push(("name", clean(&creds.name).into_owned()));
    lines.push(("scopes", scopes(&creds.scopes)));
    lines.push(("refresh tokens", yes_no(creds.refresh_tokens).to_owned()));
    if let Some(until) = creds.previous_secret_valid_until {
        lines.push(("previous secret valid until", timestamp(until)));
    }
    if let Some(at) = creds.secret_expires_at {
        lines.push(("secret expires", timestamp(at)));
    }
    if creds.access_token_ttl_seconds.is_some() {
        lines.push(("access-token ttl", access_token_ttl(creds.access_token_ttl_seconds)));
    }
    if !creds.audiences.is_empty() {
        lines.push(("audiences", audiences(&creds.audiences)));
    }
    if creds.require_dpop {
        lines.push(("DPoP", dpop(true).to_owned()));
    }
    let mut text = key_values(&lines);
    if !keys {
        text.push_str("\nThe secret will not be shown again: store it now.\n");
    }
    text
}

/// The signing keys as a table: when each was published, signed, and
/// until when it stays in the JWKS.
pub fn keys_table(keys: &[KeyInfo]) -> String {
    if keys.is_empty() {
        return "no signing keys\n".to_owned();
    }
    let when = |t: Option<u64>| t.map_or_else(|| "-".to_owned(), timestamp);
    let rows = keys.iter().map(|k| {
        let mut state = k.state.to_string();
        if k.imported {
            state.push_str(" (imported)");
        }
        vec![
            clean(&k.kid).into_owned(),
            clean(&k.alg).into_owned(),
            state,
            timestamp(k.created_at),
            when(k.activated_at),
            when(k.published_until.or(k.retired_at)),
        ]
    });
    let mut text = table(&["KID", "ALG", "STATE", "PUBLISHED", "SIGNING SINCE", "IN JWKS UNTIL"], rows);
    for key in keys {
        if let Some(at) = key.rotation_scheduled_at {
            let _ = writeln!(text, "\nRotation scheduled: {} signs from {}.", clean(&key.kid), timestamp(at));
        }
    }
    text
}

/// What `keys rotate` did, with the time in UTC, then the keys.
pub fn key_rotation(rotation: &KeyRotation) -> String {
    let kid_in = |state: KeyState| {
        rotation.keys.iter().find(|k| k.state == state).map_or_else(|| "?".to_owned(), |k| clean(&k.kid).into_owned())
    };
    let when = timestamp(rotation.rotates_at);
    let head = match rotation.outcome {
        RotationOutcome::Rotated => format!(
            "Rotated at {when}: {} signs new tokens; the previous key stays in the JWKS until its tokens have \
             expired; {} is the next key.\n",
            kid_in(KeyState::Active),
            kid_in(KeyState::Next)
        ),
        RotationOutcome::Scheduled => format!(
            "Rotation scheduled for {when}: the next key {} has not been in the JWKS for one cache lifetime \
             ({} s) yet, so resource servers may not know it; it signs from then on. Nothing to do: the server \
             rotates by itself (`keys rotate --now` rotates at once).\n",
            kid_in(KeyState::Next),
            rotation.jwks_max_age
        ),
    };
    format!("{head}\n{}", keys_table(&rotation.keys))
}

/// What `keys revoke KID` did: the revoked key's former state says what
/// changed besides it leaving the JWKS.
pub fn key_revoked(kid: &str, before: &[KeyInfo], after: &[KeyInfo]) -> String {
    let kid = clean(kid);
    let was = before.iter().find(|k| k.kid == *kid).map(|k| k.state);
    let kid_in = |state: KeyState| {
        after.iter().find(|k| k.state == state).map_or_else(|| "?".to_owned(), |k| clean(&k.kid).into_owned())
    };
    let mut text = format!("Revoked {kid}: it is out of the JWKS now, and tokens it signed stop verifying.\n");
    match was {
        Some(KeyState::Active) => {
            let _ = writeln!(
                text,
                "{} signs from now; {} is the new next key. Resource servers holding an older JWKS refetch it on \
                 the unknown kid.",
                kid_in(KeyState::Active),
                kid_in(KeyState::Next)
            );
        }
        Some(KeyState::Next) => {
            let _ = writeln!(text, "{} is the new next key.", kid_in(KeyState::Next));
        }
        _ => {}
    }
    text.push('\n');
    text.push_str(&keys_table(after));
    text
}

/// The state of the current secret: whether and when it expires.
pub fn secret_state(expires_at: Option<u64>, now: u64) -> String {
    match expires_at {
        None => "current, does not expire".to_owned(),
        Some(at) if at <= now => format!("EXPIRED since {} (rotate it)", timestamp(at)),
        Some(at) => format!("current, expires {}", timestamp(at)),
    }
}

/// The local clock, to say whether a secret has expired.
#[allow(clippy::disallowed_methods, reason = "the operator's view of now; nothing depends on it but a label")]
fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The confirmation of `clients revoke`.
pub fn revoked(client: &ClientInfo) -> String {
    format!(
        "Client {} is {}: its token requests are refused and its refresh tokens revoked.\n\
         Access tokens it already holds stay valid until they expire.\n",
        clean(&client.client_id),
        client.status
    )
}

/// The confirmation of `clients delete`.
pub fn deleted(deleted: &Deleted) -> String {
    format!("Deleted client {} and {}.\n", clean(&deleted.client_id), families(deleted.refresh_families_revoked))
}

/// The confirmation of `tokens revoke-family`.
pub fn families_revoked(revoked: &FamiliesRevoked) -> String {
    format!("Revoked {} of client {}.\n", families(revoked.revoked_families), clean(&revoked.client_id))
}

/// Seconds since the epoch as RFC 3339 UTC, to the second (the shared
/// helper every message uses).
pub fn timestamp(secs: u64) -> String {
    tessera_shared::utc::rfc3339(secs)
}

/// `message` fit for the one line of an error report: line breaks and other
/// control characters become spaces, runs of whitespace collapse.
pub fn one_line(message: &str) -> String {
    message
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with control characters shown escaped (`\n`, `\u{1b}`) rather
/// than acted upon by the terminal.
pub fn clean(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn scopes(scopes: &[String]) -> String {
    if scopes.is_empty() { "(none: tokens carry no scope)".to_owned() } else { clean(&scopes.join(" ")).into_owned() }
}

fn families(n: u64) -> String {
    if n == 1 { "1 refresh-token family".to_owned() } else { format!("{n} refresh-token families") }
}

/// Lines of `key: value`, the values aligned.
fn key_values(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut text = String::new();
    for (key, value) in lines {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{:width$} {value}", format!("{key}:"));
    }
    text
}

/// Columns padded to their widest cell, two spaces apart, no trailing blanks.
/// Width counts characters, which is exact for the ASCII the server emits
/// and close enough for names in other scripts.
fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> =
        std::iter::once(headers.iter().map(|h| (*h).to_owned()).collect()).chain(rows).collect();
    let mut widths = vec![0; headers.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:width$}  ");
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests;
