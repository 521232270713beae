//! `tessera-admin keys ...`

use std::io::Write;

use super::args::KeysCommand;
use super::{Error, output, print, print_json};
use crate::client::AdminClient;
use tessera_shared::admin::{ImportKey, RotateKeys};

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
        KeysCommand::Rotate { now, json } => {
            let rotation = client.rotate_keys(RotateKeys { now }).await?;
            if json { print_json(out, &rotation) } else { print(out, &output::key_rotation(&rotation)) }
        }
        KeysCommand::Revoke { kid, json } => {
            let before = client.keys().await?;
            let keys = client.revoke_key(&kid).await?;
            if json { print_json(out, &keys) } else { print(out, &output::key_revoked(&kid, &before, &keys)) }
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
