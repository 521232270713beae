use super::*;
use tessera_shared::admin::{ClientStatus, KeyState};

const ID: &str = "oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-";

fn info() -> ClientInfo {
    ClientInfo {
        client_id: ID.into(),
        name: "billing".into(),
        status: ClientStatus::Active,
        scopes: vec!["read".into(), "write".into()],
        refresh_tokens: true,
        created_at: 1_700_000_000,
        last_used_at: Some(1_700_000_060),
        secret_set_at: 1_700_000_000,
        previous_secret_valid_until: None,
        secret_expires_at: None,
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        active_refresh_families: 3,
        auth_method: tessera_shared::admin::AuthMethod::ClientSecret,
        key_thumbprints: Vec::new(),
    }
}

fn creds() -> ClientCredentials {
    ClientCredentials {
        client_id: ID.into(),
        client_secret: "Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq".into(),
        name: "billing".into(),
        scopes: vec![],
        refresh_tokens: false,
        previous_secret_valid_until: None,
        secret_expires_at: None,
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        auth_method: tessera_shared::admin::AuthMethod::ClientSecret,
        key_thumbprints: Vec::new(),
    }
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
    assert_eq!(timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(timestamp(253_402_300_799), "9999-12-31T23:59:59Z");
    // Beyond RFC 3339, and a value a broken server might send: no panic.
    assert_eq!(timestamp(253_402_300_800), "253402300800s after the epoch");
    assert_eq!(timestamp(u64::MAX), format!("{}s after the epoch", u64::MAX));
}

#[test]
fn client_table_is_aligned() {
    let mut second = info();
    second.client_id = format!("{}x", &ID[..ID.len() - 1]);
    second.name = "a much longer name".into();
    second.status = ClientStatus::Revoked;
    second.scopes.clear();
    second.refresh_tokens = false;
    second.last_used_at = None;
    let table = clients_table(&[info(), second]);
    let expected = format!(
        "\
CLIENT ID{pad}  NAME                STATUS   SCOPES      REFRESH  CREATED               LAST USED
{ID}  billing             active   read,write  yes      2023-11-14T22:13:20Z  2023-11-14T22:14:20Z
oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynUx  a much longer name  revoked  -           no       2023-11-14T22:13:20Z  never
",
        pad = " ".repeat(ID.len() - "CLIENT ID".len())
    );
    assert_eq!(table, expected);
}

#[test]
fn empty_lists_say_so() {
    assert_eq!(clients_table(&[]), "no clients\n");
    assert_eq!(keys_table(&[]), "no signing keys\n");
}

#[test]
fn details_are_key_value_lines() {
    let mut client = info();
    client.previous_secret_valid_until = Some(1_700_000_300);
    assert_eq!(
        client_details(&client),
        format!(
            "\
client ID:               {ID}
name:                    billing
status:                  active
scopes:                  read write
refresh tokens:          yes
access-token ttl:        the server's
audiences:               the server's
DPoP:                    optional
created:                 2023-11-14T22:13:20Z
last used:               2023-11-14T22:14:20Z
authentication:          client_secret
secret set:              2023-11-14T22:13:20Z
secret:                  current, does not expire
previous secret:         still accepted until 2023-11-14T22:18:20Z (end of the grace period)
active refresh families: 3
"
        )
    );
    client.previous_secret_valid_until = None;
    assert!(client_details(&client).contains("\nprevious secret:         none\n"));
    client.access_token_ttl_seconds = Some(60);
    client.audiences = vec!["https://a.test".into(), "urn:b".into()];
    let details = client_details(&client);
    assert!(details.contains("\naccess-token ttl:        60 s\n"), "{details}");
    assert!(details.contains("\naudiences:               https://a.test urn:b\n"), "{details}");
    client.require_dpop = true;
    assert!(client_details(&client).contains("\nDPoP:                    required (every access token"));
}

#[test]
fn the_secret_state_says_whether_and_when_it_expires() {
    assert_eq!(secret_state(None, 5), "current, does not expire");
    assert_eq!(secret_state(Some(1_700_000_000), 1_699_999_999), "current, expires 2023-11-14T22:13:20Z");
    assert_eq!(secret_state(Some(1_700_000_000), 1_700_000_000), "EXPIRED since 2023-11-14T22:13:20Z (rotate it)");
    let mut creds = creds();
    creds.secret_expires_at = Some(1_700_000_000);
    assert!(credentials(&creds).contains("secret expires:"), "{}", credentials(&creds));
}

#[test]
fn credentials_show_the_secret_once_with_a_warning() {
    let text = credentials(&creds());
    assert!(
        text.starts_with(&format!("client ID:      {ID}\nclient secret:  Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq\n")),
        "{text}"
    );
    assert!(text.contains("scopes:         (none: tokens carry no scope)\n"), "{text}");
    assert!(text.contains("refresh tokens: no\n"), "{text}");
    assert!(text.ends_with("\nThe secret will not be shown again: store it now.\n"), "{text}");
}

#[test]
fn json_is_one_document_with_id_and_secret() {
    let text = json(&creds()).unwrap();
    assert!(text.ends_with("}\n"));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["client_id"], ID);
    assert_eq!(value["client_secret"], "Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq");

    let text = json(&[info()]).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value.as_array().map(Vec::len), Some(1));
    assert!(value[0].get("client_secret").is_none());
}

#[test]
fn keys_table_lists_state_and_lifecycle_dates() {
    let key = |kid: &str, alg: &str, state| KeyInfo {
        kid: kid.into(),
        alg: alg.into(),
        state,
        created_at: 0,
        activated_at: None,
        deactivated_at: None,
        published_until: None,
        retired_at: None,
        imported: false,
        rotation_scheduled_at: None,
    };
    let keys = [
        KeyInfo { activated_at: Some(60), ..key("kid-active", "ES256", KeyState::Active) },
        KeyInfo { created_at: 1_700_000_000, imported: true, ..key("k2", "RS256", KeyState::Next) },
        KeyInfo { published_until: Some(1_700_000_000), ..key("k3", "EdDSA", KeyState::Retiring) },
    ];
    assert_eq!(
        keys_table(&keys),
        "\
KID         ALG    STATE            PUBLISHED             SIGNING SINCE         IN JWKS UNTIL
kid-active  ES256  active           1970-01-01T00:00:00Z  1970-01-01T00:01:00Z  -
k2          RS256  next (imported)  2023-11-14T22:13:20Z  -                     -
k3          EdDSA  retiring         1970-01-01T00:00:00Z  -                     2023-11-14T22:13:20Z
"
    );
}

#[test]
fn terminal_control_sequences_are_defused() {
    let mut client = info();
    client.name = "evil\u{1b}[2J\nname".into();
    let table = clients_table(&[client.clone()]);
    assert!(!table.contains('\u{1b}'), "{table:?}");
    assert_eq!(table.lines().count(), 2, "{table:?}");
    assert!(table.contains(r"evil\u{1b}[2J\nname"), "{table:?}");
    let details = client_details(&client);
    assert!(!details.contains('\u{1b}'));
    assert_eq!(clean("plain"), Cow::Borrowed("plain"));
}

#[test]
fn error_messages_fit_on_one_line() {
    assert_eq!(one_line("no such\nclient\r\n  \u{1b}x"), "no such client x");
    assert_eq!(one_line("fine"), "fine");
}

#[test]
fn confirmations_count_families() {
    let d = Deleted { client_id: ID.into(), refresh_families_revoked: 1 };
    assert_eq!(deleted(&d), format!("Deleted client {ID} and 1 refresh-token family.\n"));
    let r = FamiliesRevoked { client_id: ID.into(), revoked_families: 0 };
    assert_eq!(families_revoked(&r), format!("Revoked 0 refresh-token families of client {ID}.\n"));
    let mut client = info();
    client.status = ClientStatus::Revoked;
    assert!(revoked(&client).starts_with(&format!("Client {ID} is revoked: ")));
}

fn key_in(kid: &str, state: KeyState) -> KeyInfo {
    KeyInfo {
        kid: kid.into(),
        alg: "ES256".into(),
        state,
        created_at: 1_796_319_593,
        activated_at: None,
        deactivated_at: None,
        published_until: None,
        retired_at: None,
        imported: false,
        rotation_scheduled_at: None,
    }
}

/// `keys rotate` says when, in UTC, never in raw Unix seconds; `keys list`
/// shows the schedule.
#[test]
fn a_scheduled_rotation_is_told_in_utc() {
    let at = 1_796_319_894;
    let next = KeyInfo { rotation_scheduled_at: Some(at), ..key_in("kid-next", KeyState::Next) };
    let rotation = KeyRotation {
        outcome: RotationOutcome::Scheduled,
        rotates_at: at,
        jwks_max_age: 300,
        keys: vec![key_in("kid-active", KeyState::Active), next],
    };
    let text = key_rotation(&rotation);
    assert!(text.starts_with("Rotation scheduled for 2026-12-03T17:44:54Z: the next key kid-next"), "{text}");
    assert!(text.contains("(300 s)") && text.contains("--now"), "{text}");
    assert!(text.contains("Rotation scheduled: kid-next signs from 2026-12-03T17:44:54Z."), "{text}");
    assert!(!text.contains(&at.to_string()) && !text.contains("1796319593"), "no raw Unix seconds: {text}");

    let rotated = KeyRotation { outcome: RotationOutcome::Rotated, rotates_at: at, ..rotation };
    assert!(key_rotation(&rotated).starts_with("Rotated at 2026-12-03T17:44:54Z: kid-active signs new tokens"));
}

#[test]
fn a_revocation_says_what_changed() {
    let before = [key_in("a", KeyState::Active), key_in("n", KeyState::Next), key_in("old", KeyState::Retiring)];
    let after = [key_in("n", KeyState::Active), key_in("n2", KeyState::Next), key_in("a", KeyState::Retired)];
    let text = key_revoked("a", &before, &after);
    assert!(text.starts_with("Revoked a: it is out of the JWKS now, and tokens it signed stop verifying.\nn signs from now; n2 is the new next key."), "{text}");
    let text = key_revoked("old", &before, &before);
    assert!(
        text.starts_with("Revoked old: it is out of the JWKS now, and tokens it signed stop verifying.\n\n"),
        "{text}"
    );
}

/// Issue 16: a private_key_jwt client shows its method and thumbprints,
/// no secret lines; its credentials carry no secret and no warning.
#[test]
fn a_key_client_shows_its_keys_and_no_secret() {
    let mut client = info();
    client.auth_method = tessera_shared::admin::AuthMethod::PrivateKeyJwt;
    client.key_thumbprints = vec!["tp-one".into(), "tp-two".into()];
    let details = client_details(&client);
    assert!(details.contains("authentication:          private_key_jwt\n"), "{details}");
    assert!(details.contains("key thumbprints:         tp-one tp-two\n"), "{details}");
    assert!(!details.contains("secret"), "{details}");
    let mut creds = creds();
    creds.client_secret = String::new();
    creds.auth_method = tessera_shared::admin::AuthMethod::PrivateKeyJwt;
    creds.key_thumbprints = vec!["tp-one".into()];
    let text = credentials(&creds);
    assert!(text.contains("key thumbprints") && !text.contains("secret"), "{text}");
}
