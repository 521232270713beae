use super::*;

fn config(address_burst: u32, client_burst: u32, max_tracked: usize) -> RateLimitConfig {
    RateLimitConfig {
        enabled: true,
        address_burst,
        address_per_minute: 60,
        client_burst,
        client_per_minute: 60,
        max_tracked,
    }
}

/// Collects events instead of logging them.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<BurstEvent>>);

impl SecurityEvents for Recorder {
    fn auth_failure_burst(&self, event: &BurstEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

const ID: &str = "oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn an_address_is_limited_after_its_burst_and_recovers_with_time() {
    let limiter = AuthLimiter::new(&config(3, 100, 100));
    let t0 = Instant::now();
    let attacker = ip("127.0.0.2");
    for _ in 0..3 {
        assert_eq!(limiter.check(attacker, Some(ID), t0), Admission::Allowed);
        limiter.failure(attacker, Some(ID), t0);
    }
    let Admission::Limited { scope, retry_after } = limiter.check(attacker, None, t0) else {
        panic!("the fourth attempt must be limited");
    };
    assert_eq!(scope, Scope::Address);
    assert_eq!(retry_after, Duration::from_secs(1), "60 per minute: one token a second");
    assert_eq!(limiter.check(ip("127.0.0.1"), Some(ID), t0), Admission::Allowed, "other addresses are untouched");
    assert_eq!(limiter.check(attacker, None, t0 + Duration::from_secs(1)), Admission::Allowed, "refilled");
}

#[test]
fn a_dry_client_bucket_spares_its_trusted_sources_only() {
    let limiter = AuthLimiter::new(&config(1000, 5, 100));
    let t0 = Instant::now();
    let holder = ip("127.0.0.1");
    limiter.success(holder, ID, t0);
    // Five attackers on five addresses, each far below the address limit.
    for i in 0..5 {
        limiter.failure(ip(&format!("10.0.0.{i}")), Some(ID), t0);
    }
    assert!(matches!(limiter.check(ip("10.0.0.9"), Some(ID), t0), Admission::Limited { scope: Scope::ClientId, .. }));
    assert_eq!(limiter.check(holder, Some(ID), t0), Admission::Allowed, "the holder's address is trusted");
    assert_eq!(
        limiter.check(ip("10.0.0.9"), Some("oa2-client-id_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"), t0),
        Admission::Allowed,
        "other client IDs are untouched"
    );
    assert!(
        matches!(limiter.check(holder, Some(ID), t0 + TRUST_TTL + Duration::from_secs(1)), Admission::Allowed),
        "the bucket refilled meanwhile"
    );
}

#[test]
fn trust_expires() {
    let limiter = AuthLimiter::new(&config(1000, 1, 100));
    let t0 = Instant::now();
    limiter.success(ip("127.0.0.1"), ID, t0);
    let later = t0 + TRUST_TTL + Duration::from_secs(1);
    limiter.failure(ip("10.0.0.1"), Some(ID), later);
    assert!(matches!(limiter.check(ip("127.0.0.1"), Some(ID), later), Admission::Limited { .. }));
}

#[test]
fn a_burst_is_reported_once_per_bucket() {
    let recorder = Arc::new(Recorder::default());
    let limiter = AuthLimiter::new(&config(2, 3, 100)).with_events(recorder.clone());
    let t0 = Instant::now();
    for _ in 0..10 {
        limiter.failure(ip("127.0.0.2"), Some(ID), t0);
    }
    let events = recorder.0.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].scope, Scope::Address);
    assert_eq!(events[1].scope, Scope::ClientId);
    assert_eq!(events[1].client_id.as_deref(), Some(ID));
}

#[test]
fn ipv6_is_keyed_by_its_64_prefix_and_mapped_ipv4_as_ipv4() {
    let limiter = AuthLimiter::new(&config(1, 100, 100));
    let t0 = Instant::now();
    limiter.failure(ip("2001:db8::1"), None, t0);
    assert!(matches!(limiter.check(ip("2001:db8::ffff:1"), None, t0), Admission::Limited { .. }));
    assert_eq!(limiter.check(ip("2001:db8:0:1::1"), None, t0), Admission::Allowed);
    limiter.failure(ip("::ffff:10.1.2.3"), None, t0);
    assert!(matches!(limiter.check(ip("10.1.2.3"), None, t0), Admission::Limited { .. }));
}

#[test]
fn memory_stays_bounded_under_a_flood_of_addresses() {
    let limiter = AuthLimiter::new(&config(1, 1, 64));
    let t0 = Instant::now();
    for i in 0..10_000u32 {
        let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let at = t0 + Duration::from_millis(u64::from(i));
        limiter.failure(address, Some(&format!("oa2-client-id_{i:032}")), at);
        limiter.success(address, ID, at);
    }
    assert!(limiter.addresses.lock().unwrap().entries.len() <= 64);
    assert!(limiter.clients.lock().unwrap().entries.len() <= 64);
    assert!(limiter.trusted.lock().unwrap().entries.len() <= 64);
    // The most recent attacker is still remembered.
    let last = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 9_999));
    assert!(matches!(limiter.check(last, None, t0 + Duration::from_millis(9_999)), Admission::Limited { .. }));
}

#[test]
fn disabled_limits_nothing() {
    let limiter = AuthLimiter::new(&RateLimitConfig { enabled: false, ..config(1, 1, 16) });
    let t0 = Instant::now();
    for _ in 0..10 {
        limiter.failure(ip("127.0.0.2"), Some(ID), t0);
    }
    assert_eq!(limiter.check(ip("127.0.0.2"), Some(ID), t0), Admission::Allowed);
}

/// Issue 13, item 11: a neighbour behind the same NAT (or in the same /64)
/// empties the address bucket; a client that authenticated from that
/// address recently is still admitted, others are not.
#[test]
fn a_dry_address_bucket_spares_clients_that_authenticated_from_it() {
    const OTHER: &str = "oa2-client-id_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let limiter = AuthLimiter::new(&config(3, 100, 100));
    let t0 = Instant::now();
    let nat = ip("2001:db8::1");
    limiter.success(nat, ID, t0);
    let neighbour = ip("2001:db8::ffff");
    for _ in 0..3 {
        limiter.failure(neighbour, Some(OTHER), t0);
    }
    assert!(matches!(limiter.check(neighbour, Some(OTHER), t0), Admission::Limited { scope: Scope::Address, .. }));
    assert!(matches!(limiter.check(nat, None, t0), Admission::Limited { scope: Scope::Address, .. }));
    assert_eq!(limiter.check(nat, Some(ID), t0), Admission::Allowed, "the client with the right secret gets in");
    assert_eq!(limiter.check(neighbour, Some(ID), t0), Admission::Allowed, "from anywhere in the /64");
    assert!(matches!(limiter.check(ip("2001:db9::1"), Some(ID), t0), Admission::Allowed), "other /64s untouched");
    let later = t0 + TRUST_TTL + Duration::from_secs(1);
    for _ in 0..3 {
        limiter.failure(neighbour, Some(OTHER), later);
    }
    assert!(
        matches!(limiter.check(nat, Some(ID), later), Admission::Limited { scope: Scope::Address, .. }),
        "trust expires"
    );
}
