//! The command line, as clap derive definitions. The names are part of the
//! contract in DESIGN.md: scripts depend on them.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::client;

/// The data directory used when neither `--data-dir` nor `TESSERA_DATA_DIR`
/// names one; the same default as `tessera-server`.
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";

/// Manage a Tessera OAuth 2.0 token server through its admin socket.
#[derive(Debug, Parser)]
///
/// Without a subcommand, opens the operator console (a full-screen terminal
/// UI) on the server's admin socket.
#[command(name = "tessera-admin", version)]
pub struct Args {
    /// Where to find the server.
    #[command(flatten)]
    pub global: GlobalOpts,

    /// What to do; none opens the console.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options that locate the server, given before the subcommand.
#[derive(Debug, clap::Args)]
pub struct GlobalOpts {
    /// The server's data directory; its admin socket is DIR/admin.sock.
    #[arg(
        long,
        value_name = "DIR",
        env = "TESSERA_DATA_DIR",
        default_value = DEFAULT_DATA_DIR
    )]
    pub data_dir: PathBuf,

    /// The admin socket itself; overrides --data-dir.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl GlobalOpts {
    /// The admin socket these options designate.
    pub fn socket_path(&self) -> PathBuf {
        resolve_socket(&self.data_dir, self.socket.as_deref())
    }
}

/// `socket` if given, else the socket inside `data_dir`.
pub fn resolve_socket(data_dir: &Path, socket: Option<&Path>) -> PathBuf {
    socket.map_or_else(|| client::socket_path(data_dir), Path::to_path_buf)
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect, rotate and revoke OAuth clients.
    #[command(subcommand)]
    Clients(ClientsCommand),

    /// Inspect, rotate and import the signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),

    /// Revoke refresh tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),

    /// Show the audit trail: operators' actions and security events.
    Audit {
        /// Print one JSON object per line instead of a table.
        #[arg(long)]
        json: bool,

        /// Keep printing new events as they happen, until Ctrl-C.
        #[arg(long)]
        follow: bool,

        /// How many of the newest events to show first.
        #[arg(long, value_name = "N", default_value_t = 100)]
        last: usize,
    },
    /// Verify an access token offline and print its claims, or why it fails.
    Verify(VerifyArgs),
}

/// `tessera-admin verify TOKEN [--jwks URL|FILE] ...`
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The access token (a JWT); `-` reads it from standard input, which
    /// keeps it out of the process list.
    #[arg(value_name = "TOKEN")]
    pub token: String,

    /// The issuer's public keys: a JWKS URL or a JWKS file.
    #[arg(long, value_name = "URL|FILE", default_value = DEFAULT_JWKS_URL)]
    pub jwks: String,

    /// The expected `iss`. Default: the origin of the --jwks URL, which is
    /// the server's default issuer; required with a JWKS file.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,

    /// The expected `aud`. Default: the issuer (the server's default audience).
    #[arg(long, value_name = "AUD")]
    pub audience: Option<String>,

    /// Print the claims as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The JWKS of a server started with the default `--listen`.
pub const DEFAULT_JWKS_URL: &str = "http://127.0.0.1:8080/.well-known/jwks.json";

/// `tessera-admin clients ...`
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// List every client (never shows secrets).
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Create a client and print its secret, once; or, with --public-key, a
    /// client without a secret that authenticates with private_key_jwt.
    Create {
        /// A name for operators; need not be unique.
        #[arg(long)]
        name: String,

        /// A scope the client may ask for; repeat for more. None: the client
        /// gets unscoped tokens.
        #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_scope)]
        scopes: Vec<String>,

        /// Do not issue refresh tokens to this client.
        #[arg(long)]
        no_refresh: bool,

        /// Lifetime of the secret in seconds; after it the secret fails like a
        /// wrong one. Default: it does not expire.
        #[arg(long, value_name = "SECONDS")]
        secret_ttl: Option<u64>,

        /// Lifetime of this client's access tokens in seconds, at most the
        /// server's access_token_ttl. Default: the server's.
        #[arg(long, value_name = "SECONDS")]
        access_token_ttl: Option<u64>,

        /// An audience (absolute URI) this client's tokens may be for; repeat
        /// for more. The first is the default; a token request picks another
        /// with `resource` (RFC 8707). None: the server's audience.
        #[arg(long = "audience", value_name = "URI")]
        audiences: Vec<String>,

        /// Refuse this client's token requests without a DPoP proof (RFC
        /// 9449), so every access token it gets is bound to its key.
        #[arg(long)]
        require_dpop: bool,
        /// A public key file (PEM SubjectPublicKeyInfo: EC P-256, Ed25519 or
        /// RSA of 2048 to 4096 bits; or a JWK or JWKS); repeat for more. The
        /// client then has no secret and authenticates with an assertion
        /// signed by one of these keys (private_key_jwt, RFC 7523).
        #[arg(long = "public-key", value_name = "FILE", conflicts_with = "secret_ttl")]
        public_keys: Vec<std::path::PathBuf>,

        /// Print the credentials as one JSON object.
        #[arg(long)]
        json: bool,
    },

    /// Replace the public keys of a private_key_jwt client (key rotation):
    /// assertions signed by a key no longer given fail from now on.
    SetKeys {
        /// The client's ID.
        #[arg(value_name = "CLIENT_ID")]
        client_id: String,

        /// A public key file, as for `create`; repeat for more.
        #[arg(long = "public-key", value_name = "FILE", required = true)]
        public_keys: Vec<std::path::PathBuf>,

        /// Print the client as a JSON object.
        #[arg(long)]
        json: bool,
    },

    /// Show one client (never shows its secret).
    Show {
        /// The client's ID.
        #[arg(value_name = "CLIENT_ID")]
        client_id: String,

        /// Print a JSON object instead of key: value lines.
        #[arg(long)]
        json: bool,
    },

    /// Give a client a new secret and print it, once.
    RotateSecret {
        /// The client's ID.
        #[arg(value_name = "CLIENT_ID")]
        client_id: String,

        /// How long the previous secret keeps working, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        grace: u64,

        /// Lifetime of the new secret in seconds. Default: it does not expire.
        #[arg(long, value_name = "SECONDS")]
        secret_ttl: Option<u64>,

        /// Print the credentials as one JSON object.
        #[arg(long)]
        json: bool,
    },

    /// Refuse the client's token requests from now on and revoke its refresh
    /// tokens. Access tokens it holds expire on their own.
    Revoke {
        /// The client's ID.
        #[arg(value_name = "CLIENT_ID")]
        client_id: String,
    },

    /// Delete a client and its refresh tokens.
    Delete {
        /// The client's ID.
        #[arg(value_name = "CLIENT_ID")]
        client_id: String,
    },

    /// Let a revoked client obtain tokens again (its old refresh tokens stay
    /// revoked).
    Reactivate {
        /// The client's ID.
        #[arg(value_name = "CLIENT_ID")]
        client_id: String,
    },
}

/// `tessera-admin keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys and their states.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Rotate: the next key signs, a new next key is published, the active
    /// key retires. While the next key is younger than one JWKS cache
    /// lifetime the rotation is scheduled for its first safe moment, and the
    /// command says when (UTC).
    Rotate {
        /// Rotate at once even if resource servers may not have the next key
        /// yet (a lost or compromised key); they refetch the JWKS on the new
        /// kid.
        #[arg(long)]
        now: bool,

        /// Print the outcome as a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Take a key out of the JWKS at once: tokens it signed stop verifying.
    /// Revoking the active key makes the next key sign from now and
    /// publishes a new next key.
    Revoke {
        /// The key's kid, as `keys list` shows it. A kid is base64url and
        /// may start with `-`, so it is never taken for an option.
        #[arg(value_name = "KID", allow_hyphen_values = true)]
        kid: String,

        /// Print the keys as a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Import a PKCS#8 PEM private key (RS256, ES256 or EdDSA) as the next
    /// key; it signs from the next rotation.
    Import {
        /// The PEM file (`-----BEGIN PRIVATE KEY-----`).
        #[arg(long, value_name = "FILE")]
        pem: PathBuf,

        /// Print the keys as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `tessera-admin tokens ...`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Revoke every refresh-token family of a client; the client stays active.
    RevokeFamily {
        /// The client whose refresh tokens to revoke.
        #[arg(long = "client", value_name = "CLIENT_ID")]
        client_id: String,
    },
}

/// A scope as RFC 6749 §3.3 defines one: one or more printable ASCII
/// characters other than space, `"` and `\`. Checked here so that a typo such
/// as `--scope "read write"` is a usage error, not a surprising client.
fn parse_scope(s: &str) -> Result<String, String> {
    let nqchar = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
    if !s.is_empty() && s.bytes().all(nqchar) {
        Ok(s.to_owned())
    } else {
        Err("a scope is one word of printable ASCII without spaces, quotes or backslashes; \
             repeat --scope for several"
            .to_owned())
    }
}

#[cfg(test)]
mod tests;
