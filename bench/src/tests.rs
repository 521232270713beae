use super::*;

#[test]
fn share_of_the_ceiling_is_the_ratio_of_the_rows() {
    assert_eq!(
        ceiling_share("ES256", 25_000.0, 34_000.0),
        "client_credentials, no refresh token: 0.74 of the bare hyper + sign ceiling (issue target: 0.80)"
    );
}

#[test]
fn no_share_when_a_row_is_missing() {
    for (plain, ceiling) in [(f64::NAN, 34_000.0), (25_000.0, f64::NAN), (25_000.0, 0.0)] {
        let line = ceiling_share("ES256", plain, ceiling);
        assert!(line.contains("no share"), "{line}");
    }
}

#[test]
fn no_share_against_another_algorithm() {
    // The reference signs ES256: an EdDSA server is not comparable to it.
    let line = ceiling_share("EdDSA", 25_000.0, 34_000.0);
    assert!(line.contains("no share") && line.contains("EdDSA"), "{line}");
}
