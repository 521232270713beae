use super::*;

#[test]
fn listening_line_gives_the_address() {
    assert_eq!(listening_addr("listening on http://127.0.0.1:40123\n"), Some("127.0.0.1:40123".parse().unwrap()));
}

#[test]
fn other_lines_give_no_address() {
    assert_eq!(listening_addr(""), None);
    assert_eq!(listening_addr("listening on https://127.0.0.1:40123"), None);
    assert_eq!(listening_addr("accept failed: too many open files"), None);
}
