//! `tessera-admin tokens ...`

use std::io::Write;

use super::args::TokensCommand;
use super::{Error, output, print};
use crate::client::AdminClient;

/// Runs one `tokens` subcommand.
///
/// # Errors
///
/// As [`super::run`].
pub async fn run(client: &AdminClient, command: TokensCommand, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        TokensCommand::RevokeFamily { client_id } => {
            let revoked = client.revoke_families(&client_id).await?;
            print(out, &output::families_revoked(&revoked))
        }
    }
}
