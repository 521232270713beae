//! Micro-benchmarks of the token endpoint's hot pieces: parameter parsing,
//! client authentication, JWT encoding and refresh rotation in sled.
//!
//! `cargo bench -p tessera-server --bench hot_paths`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // benchmark code

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use tessera_server::client_auth::AuthorizationHeader;
use tessera_server::crypto::random::Random;
use tessera_server::crypto::secret::SecretHasher;
use tessera_server::crypto::signing::{JwtSigner, generate_pkcs8};
use tessera_server::grant::refresh::Presentation;
use tessera_server::grant::refresh::token::RefreshToken;
use tessera_server::grant::request::{ParsePolicy, Source, TokenRequest};
use tessera_server::http::{basic, params};
use tessera_server::store::records::{ClientRecord, FamilyRecord, NewRefreshToken};
use tessera_server::store::sled::SledStore;
use tessera_server::store::{RefreshUse, Store};
use tessera_shared::admin::ClientStatus;
use tessera_shared::claims::AccessTokenClaims;
use tessera_shared::jwk::Algorithm;

const QUERY: &[u8] = b"grant_type=refresh_token&refresh_token=Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq&client_id=oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-&client_secret=5uC5Y4Mcvdl5rB56rBmxnvB4DZgiIpcyTPbOoEWp";
const BASIC: &[u8] = b"Basic b2EyLWNsaWVudC1pZF96bU50Vy1EMFRvcXB6NEFabkJMQ0lsa2xCcno5eW5VLTo1dUM1WTRNY3ZkbDVyQjU2ckJteG52QjREWmdpSXBjeVRQYk9vRVdw";

fn parsing(c: &mut Criterion) {
    c.bench_function("parse query + token request", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            params::decode_into(black_box(QUERY), Source::Query, 64, &mut out).unwrap();
            TokenRequest::parse(&out, AuthorizationHeader::Absent, ParsePolicy { allow_query_credentials: true })
                .unwrap()
        });
    });
    c.bench_function("parse Basic header", |b| b.iter(|| basic::parse(black_box(BASIC))));
}

fn authentication(c: &mut Criterion) {
    let hasher = SecretHasher::new(&[7; 32]);
    let stored = hasher.digest("5uC5Y4Mcvdl5rB56rBmxnvB4DZgiIpcyTPbOoEWp");
    c.bench_function("client secret check (HMAC-SHA256, constant time)", |b| {
        b.iter(|| hasher.matches(black_box("5uC5Y4Mcvdl5rB56rBmxnvB4DZgiIpcyTPbOoEWp"), &stored, None));
    });
}

fn signing(c: &mut Criterion) {
    let claims = AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-".into(),
        aud: "http://127.0.0.1:8080".into(),
        exp: 1_795_948_984,
        iat: 1_795_948_684,
        jti: "QxPGJHkdfwB_B9R42z-o6Q".into(),
        client_id: "oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-".into(),
        scope: None,
        cnf: None,
    };
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let rng = SystemRandom::new();
        let signer = JwtSigner::from_pkcs8(alg, &generate_pkcs8(alg, &rng).unwrap(), rng).unwrap();
        c.bench_function(&format!("JWT encode + sign ({alg})"), |b| {
            b.iter(|| signer.sign(black_box(&claims)).unwrap())
        });
    }
}

fn rotation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = SledStore::temporary().unwrap();
    let random = Random::new();
    let first = RefreshToken { family_id: [1; 10], generation: 0, secret: random.bytes().unwrap() };
    let expires_at = u64::MAX / 2;
    let family = FamilyRecord {
        family_id: first.family_id,
        client_id: "oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-".into(),
        scope: vec![],
        created_at: 1,
        revoked_at: None,
        generation: 0,
        current: first.digest(),
        issued_at: 1,
        expires_at,
        previous: None,
        client_epoch: 0,
        dpop_jkt: None,
    };
    let client = ClientRecord {
        client_id: family.client_id.clone(),
        name: "bench".into(),
        secret_digest: [0; 32],
        secret_set_at: 1,
        previous_secret: None,
        scopes: vec![],
        refresh_tokens: true,
        status: ClientStatus::Active,
        created_at: 1,
        secret_expires_at: None,
        access_token_ttl: None,
        audiences: vec![],
        require_dpop: false,
        public_keys: vec![],
        family_epoch: 0,
    };
    runtime.block_on(store.insert_client(&client)).unwrap();
    runtime.block_on(store.create_family(&family, 1000)).unwrap();
    let mut current = first;
    let request = Presentation {
        client_id: &family.client_id,
        client_epoch: 0,
        now: 1,
        reuse_grace: 0,
        requested_scope: None,
        dpop_jkt: None,
    };
    // One durable rotation after another: includes a flush each, the cost
    // a lone client sees; concurrent clients share flushes.
    c.bench_function("refresh rotation in sled (durable, one writer)", |b| {
        b.iter(|| {
            let next = NewRefreshToken { secret: random.bytes().unwrap(), issued_at: 1, expires_at };
            let outcome = runtime.block_on(store.use_refresh_token(&current, &next, &request)).unwrap();
            let RefreshUse::Decided { family, .. } = outcome else { panic!("the family is known") };
            current = RefreshToken { family_id: family.family_id, generation: family.generation, secret: next.secret };
        });
    });
}

criterion_group!(benches, parsing, authentication, signing, rotation);
criterion_main!(benches);
