use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_source_is_capped_and_its_places_come_back() {
    let sources = Arc::new(Sources::default());
    let held: Vec<_> = (0..3).map(|_| sources.admit(ip("127.0.0.9"), 3).expect("under the cap")).collect();
    assert!(sources.admit(ip("127.0.0.9"), 3).is_none(), "the fourth from one source is refused");
    assert!(sources.admit(ip("127.0.0.1"), 3).is_some(), "other sources are untouched");
    drop(held);
    assert_eq!(sources.open(ip("127.0.0.9")), 0);
    assert!(sources.admit(ip("127.0.0.9"), 3).is_some());
}

#[test]
fn ipv6_sources_are_counted_by_their_64() {
    let sources = Arc::new(Sources::default());
    let _a = sources.admit(ip("2001:db8::1"), 2).unwrap();
    let _b = sources.admit(ip("2001:db8::ffff:1"), 2).unwrap();
    assert!(sources.admit(ip("2001:db8::2"), 2).is_none(), "one /64 is one source");
    assert!(sources.admit(ip("2001:db8:0:1::1"), 2).is_some(), "the next /64 is another");
    assert_eq!(source_key(ip("::ffff:127.0.0.9")), ip("127.0.0.9"));
}

#[test]
fn the_oldest_connection_without_a_head_is_shed_first() {
    let pending = Arc::new(Pending::default());
    let (first_head, first) = pending.register();
    let (second_head, second) = pending.register();
    let (_third_head, third) = pending.register();
    first_head.seen();
    assert_eq!(pending.len(), 2, "a complete head leaves the list");
    assert!(pending.shed_oldest());
    assert!(!first.is_cancelled(), "a connection that sent its head is never shed");
    assert!(second.is_cancelled(), "the oldest without a head goes first");
    assert!(!third.is_cancelled());
    drop(second_head);
    assert_eq!(pending.len(), 1);
    assert!(pending.shed_oldest());
    assert!(third.is_cancelled());
    assert!(!pending.shed_oldest(), "nothing left to shed");
    assert!(pending.is_empty());
}

#[test]
fn the_reserve_is_a_sixteenth_of_the_cap() {
    assert_eq!(shed_reserve(4096), 256);
    assert_eq!(shed_reserve(16), 1);
    assert_eq!(shed_reserve(1), 1);
}
