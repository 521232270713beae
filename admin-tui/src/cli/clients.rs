//! `tessera-admin clients ...`

use std::io::Write;

use std::path::PathBuf;

use tessera_shared::admin::{ClientCredentials, CreateClient, RotateSecret, SetKeys};

use super::args::ClientsCommand;
use super::{Error, emit, output, print, print_json};
use crate::client::AdminClient;

/// Runs one `clients` subcommand.
///
/// # Errors
///
/// As [`super::run`].
pub async fn run(client: &AdminClient, command: ClientsCommand, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        ClientsCommand::List { json } => {
            let clients = client.list_clients().await?;
            if json { print_json(out, &clients) } else { print(out, &output::clients_table(&clients)) }
        }
        ClientsCommand::Create {
            name,
            scopes,
            no_refresh,
            secret_ttl,
            access_token_ttl,
            audiences,
            require_dpop,
            public_keys,
            json,
        } => {
            let request = CreateClient {
                name,
                scopes,
                refresh_tokens: !no_refresh,
                secret_ttl_seconds: secret_ttl,
                access_token_ttl_seconds: access_token_ttl,
                audiences,
                require_dpop,
                public_keys: read_keys(&public_keys)?,
            };
            let creds = client.create_client(&request).await?;
            print_credentials(out, &creds, json)
        }
        ClientsCommand::SetKeys { client_id, public_keys, json } => {
            let request = SetKeys { public_keys: read_keys(&public_keys)? };
            let info = client.set_keys(&client_id, &request).await?;
            if json { print_json(out, &info) } else { print(out, &output::client_details(&info)) }
        }
        ClientsCommand::Show { client_id, json } => {
            let info = client.client(&client_id).await?;
            if json { print_json(out, &info) } else { print(out, &output::client_details(&info)) }
        }
        ClientsCommand::RotateSecret { client_id, grace, secret_ttl, json } => {
            let request = RotateSecret { grace_seconds: grace, secret_ttl_seconds: secret_ttl };
            let creds = client.rotate_secret(&client_id, request).await?;
            print_credentials(out, &creds, json)
        }
        ClientsCommand::Revoke { client_id } => {
            let info = client.revoke_client(&client_id).await?;
            print(out, &output::revoked(&info))
        }
        ClientsCommand::Delete { client_id } => {
            let deleted = client.delete_client(&client_id).await?;
            print(out, &output::deleted(&deleted))
        }
        ClientsCommand::Reactivate { client_id } => {
            let info = client.reactivate_client(&client_id).await?;
            print(out, &format!("Client {} is active again.\n", output::clean(&info.client_id)))
        }
    }
}

/// Largest key file read: a key document is a few KiB at most, and the
/// server refuses more than 32 KiB.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The contents of each key file; the server checks what they hold.
fn read_keys(paths: &[PathBuf]) -> Result<Vec<String>, Error> {
    use std::io::Read as _;
    paths
        .iter()
        .map(|path| {
            let input = |source| Error::Input { path: path.clone(), source };
            let mut text = String::new();
            std::fs::File::open(path).map_err(input)?.take(MAX_KEY_FILE).read_to_string(&mut text).map_err(input)?;
            Ok(text)
        })
        .collect()
}

/// Prints a new secret. Failing here loses the secret for good, so the error
/// names the client and the way to get another one.
fn print_credentials(out: &mut dyn Write, creds: &ClientCredentials, json: bool) -> Result<(), Error> {
    let lost = |source| Error::SecretNotShown { client_id: output::clean(&creds.client_id).into_owned(), source };
    let text = if json { output::json(creds).map_err(|e| lost(e.into()))? } else { output::credentials(creds) };
    emit(out, &text).map_err(lost)
}
