//! `tessera-admin keys ...`

use std::io::Write;

use super::args::KeysCommand;
use super::{Error, output, print, print_json};
use crate::client::AdminClient;

/// Runs one `keys` subcommand.
///
/// # Errors
///
/// As [`super::run`].
pub async fn run(client: &AdminClient, command: KeysCommand, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        KeysCommand::List { json } => {
            let keys = client.keys().await?;
            if json { print_json(out, &keys) } else { print(out, &output::keys_table(&keys)) }
        }
    }
}
