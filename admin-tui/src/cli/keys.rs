//! `tessera-admin keys ...`

use std::io::Write;

use super::args::KeysCommand;
use super::{Error, output, print, print_json};
use crate::client::AdminClient;
use tessera_shared::admin::ImportKey;

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
        KeysCommand::Rotate { json } => {
            let keys = client.rotate_keys().await?;
            if json { print_json(out, &keys) } else { print(out, &format!("Rotated.\n{}", output::keys_table(&keys))) }
        }
        KeysCommand::Import { pem, json } => {
            let text = std::fs::read_to_string(&pem).map_err(|source| Error::Input { path: pem.clone(), source })?;
            let keys = client.import_key(&ImportKey { pem: text }).await?;
            if json {
                print_json(out, &keys)
            } else {
                print(out, &format!("Imported as the next key.\n{}", output::keys_table(&keys)))
            }
        }
    }
}
