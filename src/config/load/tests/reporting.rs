//! All files are checked in one load, and every error carries file, line and value.

use super::*;

#[test]
fn errors_in_several_files_reported_together() {
    let f = Fixture::valid();
    let gatehouse = format!("{GATEHOUSE}[token]\nleeway = \"2m\"\n");
    f.write("config/gatehouse.toml", &gatehouse);
    let short = ACME.replace("0123456789abcdef", "short-id");
    f.write("config/partners/acme.toml", &short);
    let bravo = ACME
        .replace("acme", "bravo")
        .replace("share = \"demo\"", "share = \"nope\"");
    f.partner("bravo", &bravo);
    f.partner("carol", "id = \"carol\"\nstatus = [\n");
    let errors = f.errors();
    let leeway = Some(line_of(&gatehouse, "leeway"));
    assert_error(&errors, "gatehouse.toml", leeway, &["\"2m\"", "60s"]);
    let external_id = Some(line_of(&short, "external_id"));
    assert_error(&errors, "acme.toml", external_id, &["8 chars"]);
    let share = Some(line_of(&bravo, "nope"));
    assert_error(&errors, "bravo.toml", share, &["unknown share \"nope\""]);
    assert_error(&errors, "carol.toml", Some(2), &["unclosed array"]);
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[test]
fn partner_files_checked_even_when_gatehouse_toml_is_broken() {
    let f = Fixture::valid();
    let text = "partners_dir = \"partners\"\n[listener]\nmax_connections = \"many\"\n";
    f.write("config/gatehouse.toml", text);
    let short = ACME.replace("0123456789abcdef", "short");
    f.write("config/partners/acme.toml", &short);
    let errors = f.errors();
    let parts = ["`listener.max_connections`", "\"many\""];
    assert_error(&errors, "gatehouse.toml", Some(3), &parts);
    let external_id = Some(line_of(&short, "external_id"));
    assert_error(&errors, "acme.toml", external_id, &["5 chars"]);
}

#[test]
fn errors_print_as_file_line_message() {
    let f = Fixture::valid();
    let text = ACME.replace("id = \"acme\"", "id = \"acme-corp\"");
    f.write("config/partners/acme.toml", &text);
    let shown = f.load().unwrap_err().to_string();
    let file = f.path("config/partners/acme.toml");
    let expected = format!("{}:2: partner id \"acme-corp\"", file.display());
    assert!(shown.starts_with(&expected), "{shown}");
    assert_eq!(shown.lines().count(), 1, "{shown}");
}

#[test]
fn load_gateway_skips_partner_files() {
    let f = Fixture::valid();
    f.write("config/partners/acme.toml", "not = [valid");
    let c = load_gateway(&f.path("config/gatehouse.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.partners.is_empty());
    assert_eq!(c.shares.len(), 1);

    f.write(
        "config/gatehouse.toml",
        &GATEHOUSE.replace("../data/objects", "../data"),
    );
    let errors = load_gateway(&f.path("config/gatehouse.toml"))
        .unwrap_err()
        .0;
    let root = Some(line_of(GATEHOUSE, "root ="));
    assert_error(&errors, "gatehouse.toml", root, &["audit.dir"]);
}
