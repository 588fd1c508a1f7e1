//! Semantic checks of partner files: ids, external ids, keys, grants, prefixes, sessions.

use super::*;

fn acme_with(from: &str, to: &str) -> String {
    assert!(ACME.contains(from), "{from:?}");
    ACME.replace(from, to)
}

#[test]
fn partner_file_name_must_match_id() {
    let f = Fixture::valid();
    f.write(
        "config/partners/acme.toml",
        &acme_with("id = \"acme\"", "id = \"acme-corp\""),
    );
    let errors = f.errors();
    assert_error(
        &errors,
        "acme.toml",
        Some(2),
        &["\"acme-corp\"", "\"acme\".toml"],
    );
}

#[test]
fn duplicate_partner_ids_rejected() {
    let f = Fixture::valid();
    f.partner("acme2", &ACME.replace("k1", "k2"));
    let errors = f.errors();
    assert_error(&errors, "acme2.toml", Some(2), &["\"acme\" does not match"]);
    assert_error(
        &errors,
        "acme2.toml",
        Some(2),
        &["\"acme\" is also used by", "acme.toml"],
    );
}

#[test]
fn required_texts_must_not_be_empty() {
    let f = Fixture::valid();
    f.write(
        "config/partners/acme.toml",
        &acme_with("owner@example.com", " "),
    );
    assert_error(
        &f.errors(),
        "acme.toml",
        Some(4),
        &["owner must not be empty"],
    );
}

#[test]
fn grant_naming_unknown_share_rejected() {
    let f = Fixture::valid();
    let text = acme_with("share = \"demo\"", "share = \"demos\"");
    f.write("config/partners/acme.toml", &text);
    let errors = f.errors();
    let parts = ["unknown share \"demos\"", "\"demo\""];
    assert_error(&errors, "acme.toml", Some(line_of(&text, "demos")), &parts);
}

#[test]
fn grant_actions_must_be_present_and_distinct() {
    let f = Fixture::valid();
    let text = acme_with(
        "actions = [\"read\"]",
        "actions = [\n  \"read\",\n  \"read\",\n]",
    );
    f.write("config/partners/acme.toml", &text);
    let line = Some(line_of(&text, "actions") + 2);
    assert_error(&f.errors(), "acme.toml", line, &["\"read\" twice"]);

    f.write(
        "config/partners/acme.toml",
        &acme_with("actions = [\"read\"]", "actions = []"),
    );
    let line = Some(line_of(ACME, "actions"));
    assert_error(&f.errors(), "acme.toml", line, &["no actions"]);
}

#[test]
fn duplicate_grants_rejected() {
    let f = Fixture::valid();
    let text = format!("{ACME}[[grants]]\nshare = \"demo\"\nactions = [\"list\"]\n");
    f.write("config/partners/acme.toml", &text);
    let line = Some(text.lines().count() - 1);
    assert_error(
        &f.errors(),
        "acme.toml",
        line,
        &["second grant on share \"demo\""],
    );
}

#[test]
fn prefixes_normalised_and_traversal_rejected() {
    let f = Fixture::valid();
    f.write(
        "config/gatehouse.toml",
        &format!("{GATEHOUSE}prefix = \"exports/eu\"\n"),
    );
    let grant = acme_with("share = \"demo\"", "share = \"demo\"\nprefix = \"reports\"");
    f.write("config/partners/acme.toml", &grant);
    let c = f.config();
    assert_eq!(c.shares["demo"].prefix, "exports/eu/");
    assert_eq!(c.partners["acme"].grants[0].prefix, "reports/");

    for bad in ["../secrets", "/reports", "a//b", "a/./b"] {
        let text = acme_with(
            "share = \"demo\"",
            &format!("share = \"demo\"\nprefix = {bad:?}"),
        );
        f.write("config/partners/acme.toml", &text);
        let line = Some(line_of(&text, "prefix"));
        assert_error(&f.errors(), "acme.toml", line, &[&format!("{bad:?}")]);
    }
    f.write("config/partners/acme.toml", &grant);
    let gatehouse = format!("{GATEHOUSE}prefix = \"exports/../../other\"\n");
    f.write("config/gatehouse.toml", &gatehouse);
    let line = Some(line_of(&gatehouse, "prefix"));
    assert_error(
        &f.errors(),
        "gatehouse.toml",
        line,
        &["\"exports/../../other\""],
    );
}

#[test]
fn short_external_id_rejected_without_printing_it() {
    let f = Fixture::valid();
    let line = Some(line_of(ACME, "external_id"));
    f.write(
        "config/partners/acme.toml",
        &acme_with("0123456789abcdef", "0123456789abcde"),
    );
    let errors = f.errors();
    let parts = ["external_id is 15 chars; at least 16 required"];
    assert_error(&errors, "acme.toml", line, &parts);
    assert!(!errors.iter().any(|e| e.message.contains("0123456789abcde")));

    let from_file = "external_id_file = \"acme.external-id\"";
    let text = acme_with("external_id = \"0123456789abcdef\"", from_file);
    f.write("config/partners/acme.toml", &text);
    f.write("config/partners/acme.external-id", "  tiny-secret \n");
    let errors = f.errors();
    assert_error(
        &errors,
        "acme.toml",
        line,
        &["\"acme.external-id\" is 11 chars"],
    );
    assert!(!errors.iter().any(|e| e.message.contains("tiny-secret")));

    f.write(
        "config/partners/acme.external-id",
        "\n 0123456789abcdef-from-file \n",
    );
    let c = f.config();
    assert_eq!(c.partners["acme"].external_id, "0123456789abcdef-from-file");
    assert!(!format!("{:?}", c.partners["acme"]).contains("from-file"));
}

#[test]
fn exactly_one_external_id_source() {
    let f = Fixture::valid();
    let both = acme_with("status", "external_id_file = \"x\"\nstatus");
    f.write("config/partners/acme.toml", &both);
    let parts = ["only one of external_id and external_id_file"];
    assert_error(&f.errors(), "acme.toml", Some(7), &parts);
    f.write(
        "config/partners/acme.toml",
        &acme_with("external_id = \"0123456789abcdef\"", ""),
    );
    let parts = ["one of external_id or external_id_file"];
    assert_error(&f.errors(), "acme.toml", None, &parts);
}

#[test]
fn missing_key_file_reported_with_path() {
    let f = Fixture::valid();
    std::fs::remove_file(f.path("config/partners/acme.pub.pem")).unwrap();
    let errors = f.errors();
    let path = f.path("config/partners/acme.pub.pem").display().to_string();
    let parts = ["cannot read public_key_file \"acme.pub.pem\"", &path];
    assert_error(
        &errors,
        "acme.toml",
        Some(line_of(ACME, "public_key_file")),
        &parts,
    );
}

#[test]
fn missing_external_id_file_reported_with_path() {
    let f = Fixture::valid();
    let from_file = "external_id_file = \"../secrets/acme.id\"";
    f.write(
        "config/partners/acme.toml",
        &acme_with("external_id = \"0123456789abcdef\"", from_file),
    );
    let errors = f.errors();
    let path = f.path("config/secrets/acme.id").display().to_string();
    let parts = ["cannot read external_id_file \"../secrets/acme.id\"", &path];
    assert_error(
        &errors,
        "acme.toml",
        Some(line_of(ACME, "external_id")),
        &parts,
    );
}

#[test]
fn bad_key_material_rejected() {
    let f = Fixture::valid();
    let line = Some(line_of(ACME, "public_key_file"));
    f.write("config/partners/acme.pub.pem", "not a key");
    assert_error(
        &f.errors(),
        "acme.toml",
        line,
        &["\"acme.pub.pem\" of key \"k1\""],
    );
    let private = rcgen::KeyPair::generate().unwrap().serialize_pem();
    f.write("config/partners/acme.pub.pem", &private);
    let errors = f.errors();
    assert_error(&errors, "acme.toml", line, &["private key"]);
    assert!(!errors.iter().any(|e| e.message.contains("BEGIN")));
}

#[test]
fn keys_required_with_unique_ids_and_material() {
    let f = Fixture::valid();
    let text = format!("{ACME}[[keys]]\nid = \"k1\"\npublic_key_file = \"acme.pub.pem\"\n");
    f.write("config/partners/acme.toml", &text);
    let line = Some(line_of(&text, "actions") + 2);
    assert_error(&f.errors(), "acme.toml", line, &["duplicate key id \"k1\""]);

    let f = Fixture::valid();
    f.partner("bravo", &ACME.replace("acme", "bravo"));
    let (from, to) = (
        f.path("config/partners/acme.pub.pem"),
        f.path("config/partners/bravo.pub.pem"),
    );
    std::fs::copy(from, to).unwrap();
    let parts = ["same public key as key \"k1\" of partner \"acme\""];
    assert_error(
        &f.errors(),
        "bravo.toml",
        Some(line_of(ACME, "id = \"k1\"")),
        &parts,
    );

    let f = Fixture::valid();
    let no_keys = acme_with(
        "[[keys]]\nid = \"k1\"\npublic_key_file = \"acme.pub.pem\"\n",
        "",
    );
    f.write("config/partners/acme.toml", &no_keys);
    assert_error(&f.errors(), "acme.toml", None, &["at least one public key"]);
}

#[test]
fn max_session_bounded() {
    let f = Fixture::valid();
    f.write(
        "config/gatehouse.toml",
        &format!("{GATEHOUSE}[token]\nmax_lifetime = \"1h\"\n"),
    );
    let session = |d: &str| acme_with("status", &format!("max_session = \"{d}\"\nstatus"));
    f.write("config/partners/acme.toml", &session("2h"));
    let parts = ["\"2h\"", "token.max_lifetime (1h)"];
    assert_error(&f.errors(), "acme.toml", Some(7), &parts);
    f.write("config/partners/acme.toml", &session("13h"));
    assert_error(
        &f.errors(),
        "acme.toml",
        Some(7),
        &["\"13h\"", "at most 12h"],
    );
    f.write("config/partners/acme.toml", &session("0s"));
    assert_error(&f.errors(), "acme.toml", Some(7), &["\"0s\""]);
    f.write("config/partners/acme.toml", &session("30m"));
    assert_eq!(
        f.config().partners["acme"].max_session,
        Duration::from_secs(1800)
    );
}
