//! Semantic checks of gatehouse.toml: names, token limits, store types, overlapping storage.

use super::*;

#[test]
fn bad_names_rejected() {
    let f = Fixture::valid();
    let text = r#"[stores.Local]
type = "fs"
root = "../data/objects"
[shares.v1]
store = "Local"
bucket = "Demo_Bucket"
"#;
    f.write("config/gatehouse.toml", text);
    f.write(
        "config/partners/acme.toml",
        &ACME.replace("share = \"demo\"", "share = \"v1\""),
    );
    let errors = f.errors();
    assert_error(
        &errors,
        "gatehouse.toml",
        Some(1),
        &["store name \"Local\""],
    );
    assert_error(&errors, "gatehouse.toml", Some(4), &["\"v1\" is reserved"]);
    assert_error(
        &errors,
        "gatehouse.toml",
        Some(6),
        &["bucket name \"Demo_Bucket\""],
    );
}

#[test]
fn token_settings_checked() {
    let f = Fixture::valid();
    let token = r#"[token]
url = "http://gw.example.com/v1/token"
max_lifetime = "13h"
default_lifetime = "0s"
max_assertion_lifetime = "10m"
leeway = "61s"
issuer = ""
signing_keys = [{ id = "a", file = "a.pem" }, { id = "a", file = "b.pem" }, { id = "B", file = "" }]
[listener]
max_connections = 0
shutdown_grace = "0s"
max_header_bytes = 0
[limits]
max_put_bytes = "0GiB"
[tls]
dev_names = ["ok.example", "not a host"]
"#;
    let text = format!("{GATEHOUSE}{token}");
    f.write("config/gatehouse.toml", &text);
    let errors = f.errors();
    let at = |needle| Some(line_of(&text, needle));
    let url = ["\"http://gw.example.com/v1/token\"", "https"];
    assert_error(&errors, "gatehouse.toml", at("url ="), &url);
    assert_error(&errors, "gatehouse.toml", at("max_lifetime"), &["\"13h\""]);
    assert_error(
        &errors,
        "gatehouse.toml",
        at("default_lifetime"),
        &["\"0s\""],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("max_assertion"),
        &["\"10m\"", "5m"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("leeway"),
        &["\"1m 1s\"", "60s"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("issuer"),
        &["token.issuer must not be empty"],
    );
    let keys = at("signing_keys");
    assert_error(
        &errors,
        "gatehouse.toml",
        keys,
        &["duplicate signing key id \"a\""],
    );
    assert_error(&errors, "gatehouse.toml", keys, &["signing key id \"B\""]);
    assert_error(&errors, "gatehouse.toml", keys, &["file must not be empty"]);
    assert_error(
        &errors,
        "gatehouse.toml",
        at("max_connections"),
        &["greater than 0"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("shutdown_grace"),
        &["greater than 0"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("max_header_bytes"),
        &["greater than 0"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("max_put_bytes"),
        &["greater than 0"],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        at("dev_names"),
        &["\"not a host\""],
    );
    assert_eq!(errors.len(), 14, "{errors:#?}");

    f.write("config/gatehouse.toml", "[token]\nsigning_keys = []\n");
    assert_error(
        &f.errors(),
        "gatehouse.toml",
        Some(2),
        &["at least one signing key"],
    );

    f.write(
        "config/gatehouse.toml",
        "[token]\nissuer = \"gatehouse-prod\"\n",
    );
    let parts = ["\"gatehouse-prod/v1/token\"", "derived from token.issuer"];
    assert_error(&f.errors(), "gatehouse.toml", Some(2), &parts);
}

#[test]
fn store_keys_must_fit_the_store_type() {
    let f = Fixture::valid();
    let text = r#"[stores.local]
type = "fs"
region = "eu-west-1"
[stores.s3]
type = "s3"
root = "/srv"
endpoint_url = "http://minio.internal:9000"
[shares.demo]
store = "missing"
bucket = "demo"
"#;
    f.write("config/gatehouse.toml", text);
    let errors = f.errors();
    assert_error(
        &errors,
        "gatehouse.toml",
        Some(1),
        &["\"local\" has no root"],
    );
    let region = ["region is only allowed with type = \"s3\""];
    assert_error(&errors, "gatehouse.toml", Some(3), &region);
    let root = ["root is only allowed with type = \"fs\""];
    assert_error(&errors, "gatehouse.toml", Some(6), &root);
    assert_error(
        &errors,
        "gatehouse.toml",
        Some(7),
        &["\"http://minio.internal:9000\""],
    );
    assert_error(
        &errors,
        "gatehouse.toml",
        Some(9),
        &["unknown store \"missing\""],
    );
}

#[test]
fn s3_store_accepted() {
    let f = Fixture::valid();
    let text = r#"[stores.aws]
type = "s3"
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:5000"
force_path_style = true
[shares.demo]
store = "aws"
bucket = "partner-exports.eu"
prefix = "out"
"#;
    f.write("config/gatehouse.toml", text);
    let c = f.config();
    let expected = StoreConfig::S3 {
        region: Some("eu-west-1".to_owned()),
        endpoint_url: Some("http://127.0.0.1:5000".to_owned()),
        force_path_style: true,
    };
    assert_eq!(c.stores["aws"], expected);
    assert_eq!(c.shares["demo"].prefix, "out/");
}

#[test]
fn overlapping_fs_roots_rejected() {
    let f = Fixture::valid();
    let extra = "[stores.nested]\ntype = \"fs\"\nroot = \"../data/objects/inner\"\n";
    let text = format!("{GATEHOUSE}{extra}");
    f.write("config/gatehouse.toml", &text);
    let errors = f.errors();
    let line = Some(line_of(&text, "objects/inner"));
    let parts = ["\"nested\"", "root of fs store \"local\""];
    assert_error(&errors, "gatehouse.toml", line, &parts);
}

#[test]
fn fs_root_overlapping_gateway_dirs_rejected() {
    let f = Fixture::valid();
    let root = Some(line_of(GATEHOUSE, "root ="));
    f.write(
        "config/gatehouse.toml",
        &GATEHOUSE.replace("../data/objects", "../data"),
    );
    let errors = f.errors();
    let parts = [
        "\"local\"",
        "tls.cert_file",
        "audit.dir",
        "dev.dir",
        "signing key \"gw-1\"",
    ];
    assert_error(&errors, "gatehouse.toml", root, &parts);

    let inside = GATEHOUSE.replace("../data/objects", "../data/audit/objects");
    f.write("config/gatehouse.toml", &inside);
    assert_error(&f.errors(), "gatehouse.toml", root, &["audit.dir"]);

    f.write(
        "config/gatehouse.toml",
        &GATEHOUSE.replace("../data/objects", "."),
    );
    let errors = f.errors();
    let parts = [
        "gatehouse.toml",
        "partners_dir",
        "public_key_file of partner \"acme\"",
    ];
    assert_error(&errors, "gatehouse.toml", root, &parts);
}

#[test]
fn shares_reaching_the_same_objects_rejected() {
    let f = Fixture::valid();
    let extra = "[shares.reports]\nstore = \"local\"\nbucket = \"demo\"\nprefix = \"reports\"\n";
    let text = format!("{GATEHOUSE}{extra}");
    f.write("config/gatehouse.toml", &text);
    let errors = f.errors();
    // Shares are checked in name order: "reports" comes after "demo".
    let line = Some(line_of(&text, "prefix = \"reports\"") - 1);
    let parts = ["share \"reports\"", "share \"demo\"", "\"reports/\""];
    assert_error(&errors, "gatehouse.toml", line, &parts);

    let disjoint = format!("{GATEHOUSE}prefix = \"public\"\n{extra}");
    f.write("config/gatehouse.toml", &disjoint);
    assert_eq!(f.config().shares["reports"].prefix, "reports/");
}

#[test]
fn assertion_lifetime_must_fit_the_token_client() {
    let f = Fixture::valid();
    let text = format!("{GATEHOUSE}[token]\nmax_assertion_lifetime = \"30s\"\n");
    f.write("config/gatehouse.toml", &text);
    let errors = f.errors();
    let line = line_of(&text, "max_assertion_lifetime");
    assert_error(&errors, "gatehouse.toml", Some(line), &["at least 60s"]);
}

#[test]
fn proxy_protocol_needs_trusted_proxies() {
    let f = Fixture::valid();
    // Insert into an existing [listener] table when the fixture has one, else add one.
    let text = if GATEHOUSE.contains("[listener]") {
        GATEHOUSE.replacen("[listener]", "[listener]\nproxy_protocol = true", 1)
    } else {
        format!("{GATEHOUSE}[listener]\nproxy_protocol = true\n")
    };
    f.write("config/gatehouse.toml", &text);
    let errors = f.errors();
    assert_error(
        &errors,
        "gatehouse.toml",
        Some(line_of(&text, "proxy_protocol")),
        &["needs listener.trusted_proxies"],
    );
}
