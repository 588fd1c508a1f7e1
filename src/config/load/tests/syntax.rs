//! Syntax and type errors: unknown keys and bad typed values carry file, line and the value.

use super::*;

/// Inserts `line` right after the line containing `after` in `text`.
fn insert_after(text: &str, after: &str, line: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for l in text.lines() {
        out.push_str(l);
        out.push('\n');
        if !done && l.contains(after) {
            out.push_str(line);
            out.push('\n');
            done = true;
        }
    }
    assert!(done, "{after:?} not found");
    out
}

/// Every table of gatehouse.toml, written out.
const FULL_GATEHOUSE: &str = r#"data_dir = "../data"
[listener]
addr = "127.0.0.1:8443"
[tls]
dev_names = ["localhost"]
[token]
audience = "gatehouse"
[[token.signing_keys]]
id = "gw-1"
file = "../data/keys/gw-1.pem"
[limits]
max_put_bytes = "1GiB"
[audit]
dir = "../data/audit"
[dev]
bootstrap = false
[stores.local]
type = "fs"
root = "../data/objects"
[shares.demo]
store = "local"
bucket = "demo"
"#;

#[test]
fn unknown_key_rejected_in_every_gatehouse_table() {
    let anchors = [
        "data_dir =",
        "addr =",
        "dev_names =",
        "audience =",
        "id = \"gw-1\"",
        "max_put_bytes =",
        "dir = \"../data/audit\"",
        "bootstrap =",
        "type = \"fs\"",
        "bucket =",
    ];
    for anchor in anchors {
        let f = Fixture::empty();
        let text = insert_after(FULL_GATEHOUSE, anchor, "allowed_cidrz = \"0.0.0.0/0\"");
        f.write("config/gatehouse.toml", &text);
        let errors = f.errors();
        let line = line_of(&text, "allowed_cidrz");
        assert_error(
            &errors,
            "gatehouse.toml",
            Some(line),
            &["unknown field", "allowed_cidrz"],
        );
    }
}

#[test]
fn unknown_key_rejected_in_every_partner_table() {
    for anchor in ["id = \"acme\"", "id = \"k1\"", "share = \"demo\""] {
        let f = Fixture::valid();
        let text = insert_after(ACME, anchor, "allowed_cidrz = [\"0.0.0.0/0\"]");
        f.write("config/partners/acme.toml", &text);
        let errors = f.errors();
        let line = line_of(&text, "allowed_cidrz");
        assert_error(
            &errors,
            "acme.toml",
            Some(line),
            &["unknown field", "allowed_cidrz"],
        );
    }
}

#[test]
fn bad_gatehouse_values_reported_with_line_and_value() {
    let cases = [
        ("[listener]\nidle_timeout = \"15x\"\n", "\"15x\""),
        (
            "[listener]\naddr = \"localhost:8443\"\n",
            "\"localhost:8443\"",
        ),
        ("[listener]\nmax_connections = -3\n", "-3"),
        ("[listener]\nmax_header_bytes = \"16 MeB\"\n", "\"16 MeB\""),
        ("[limits]\nmax_put_bytes = \"5XB\"\n", "\"5XB\""),
        ("[limits]\nmax_put_bytes = -5\n", "-5"),
        ("[token]\nleeway = 60\n", "60"),
        ("[dev]\nbootstrap = \"yes\"\n", "\"yes\""),
        ("[stores.x]\ntype = \"ftp\"\n", "\"ftp\""),
    ];
    for (text, value) in cases {
        let f = Fixture::empty();
        f.write("config/gatehouse.toml", text);
        let errors = f.errors();
        assert_error(&errors, "gatehouse.toml", Some(2), &[value]);
    }
}

#[test]
fn bad_partner_values_reported_with_line_and_value() {
    let cases = [
        ("status = \"active\"", "status = \"on\"", "\"on\""),
        (
            "status = \"active\"",
            "status = \"active\"\nvalid_until = \"2027-13-01T00:00:00Z\"",
            "\"2027-13-01T00:00:00Z\"",
        ),
        (
            "status = \"active\"",
            "status = \"active\"\nvalid_until = 2027-01-01T00:00:00",
            "2027-01-01T00:00:00",
        ),
        (
            "status = \"active\"",
            "status = \"active\"\nreview_by = \"30/06/2027\"",
            "\"30/06/2027\"",
        ),
        (
            "status = \"active\"",
            "status = \"active\"\nmax_session = \"1 fortnight\"",
            "\"1 fortnight\"",
        ),
        (
            "actions = [\"read\"]",
            "actions = [\"read\", \"writ\"]",
            "\"writ\"",
        ),
    ];
    for (from, to, value) in cases {
        let f = Fixture::valid();
        let text = ACME.replace(from, to);
        f.write("config/partners/acme.toml", &text);
        let errors = f.errors();
        let line = line_of(&text, to.lines().last().unwrap());
        assert_error(&errors, "acme.toml", Some(line), &[value]);
    }
}

#[test]
fn native_toml_dates_accepted() {
    let f = Fixture::valid();
    let text = ACME.replace(
        "status = \"active\"",
        "status = \"suspended\"\nreview_by = 2027-06-30\nvalid_until = 2027-01-01T00:00:00Z",
    );
    f.write("config/partners/acme.toml", &text);
    let acme = f.config().partners.remove("acme").unwrap();
    assert_eq!(acme.status, PartnerStatus::Suspended);
    assert_eq!(acme.review_by, Some(jiff::civil::date(2027, 6, 30)));
    assert_eq!(
        acme.valid_until,
        Some("2027-01-01T00:00:00Z".parse().unwrap())
    );
}

#[test]
fn typed_values_accept_their_documented_forms() {
    let f = Fixture::valid();
    let text = "[listener]\nmax_header_bytes = \"32KiB\"\nidle_timeout = \"2m 30s\"\n[limits]\nmax_put_bytes = 1048576\n";
    f.write("config/gatehouse.toml", &format!("{GATEHOUSE}{text}"));
    let c = f.config();
    assert_eq!(c.listener.max_header_bytes, 32 * 1024);
    assert_eq!(c.listener.idle_timeout, Duration::from_secs(150));
    assert_eq!(c.limits.max_put_bytes, 1 << 20);
}

#[test]
fn syntax_error_reports_line() {
    let f = Fixture::valid();
    f.write(
        "config/gatehouse.toml",
        "[listener]\naddr = \"127.0.0.1:1\"\nmax_connections = = 3\n",
    );
    let errors = f.errors();
    assert_error(&errors, "gatehouse.toml", Some(3), &[]);
}
