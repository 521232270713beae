use tracing::Level;
use tracing::callsite::Identifier;
use tracing::field::FieldSet;
use tracing::metadata::Kind;

use super::*;

struct Callsite;
static CALLSITE: Callsite = Callsite;
impl tracing::callsite::Callsite for Callsite {
    fn set_interest(&self, _: tracing::subscriber::Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        unreachable!("not registered")
    }
}

fn metadata(target: &'static str, level: Level) -> Metadata<'static> {
    Metadata::new("event", target, level, None, None, None, FieldSet::new(&[], Identifier(&CALLSITE)), Kind::EVENT)
}

#[test]
fn libraries_are_held_at_info() {
    for target in
        ["tokio_postgres::query", "tokio_postgres", "postgres", "hyper::proto::h1", "rustls::server", "reqwest"]
    {
        assert!(!allowed_when_pinned(&metadata(target, Level::DEBUG)), "{target} at debug");
        assert!(!allowed_when_pinned(&metadata(target, Level::TRACE)), "{target} at trace");
        assert!(allowed_when_pinned(&metadata(target, Level::INFO)), "{target} at info");
        assert!(allowed_when_pinned(&metadata(target, Level::WARN)), "{target} at warn");
    }
}

#[test]
fn our_own_targets_and_lookalikes_are_not_pinned() {
    for target in ["tessera_server::issuer", "tessera::access", "hyperlocal", "postgresql_thing", "rustlsx"] {
        assert!(allowed_when_pinned(&metadata(target, Level::DEBUG)), "{target} at debug");
    }
}
