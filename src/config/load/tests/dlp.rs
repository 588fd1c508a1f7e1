//! `[dlp]`, `[dlp.profiles.*]`, share and grant `dlp_profile`: typed values, and every problem
//! at its line, checked against the detector pack.

use super::*;
use crate::config::{Classification, Unscannable};
use crate::dlp::Action;

const PROFILES: &str = r##"dlp_profile = "pii"

[dlp.profiles.pii]
detectors = ["credit_card", "email"]
on_unscannable = "pass"
min_classification = "internal"
columns = { ssn = "redact" }
fields = { "customer.ssn" = { action = "mask", keep_last = 2 } }
classify = { EMAIL_ADDRESS = "confidential" }
[dlp.profiles.pii.actions]
CREDIT_CARD = { action = "mask", char = "#", keep_last = 4 }
EMAIL_ADDRESS = "tokenize"

[dlp.profiles.strict]
default_action = "redact"
columns = { ssn = "block" }
fields = { "customer.ssn" = "redact" }
"##;

#[test]
fn profiles_load_into_typed_values() {
    let f = Fixture::valid();
    f.write("config/gatehouse.toml", &format!("{GATEHOUSE}{PROFILES}"));
    f.partner(
        "acme",
        &ACME.replace(
            "actions = [\"read\"]",
            "actions = [\"read\"]\ndlp_profile = \"strict\"",
        ),
    );
    let c = f.config();
    assert_eq!(c.shares["demo"].dlp_profile.as_deref(), Some("pii"));
    assert_eq!(
        c.partners["acme"].grants[0]
            .conditions
            .dlp_profile
            .as_deref(),
        Some("strict")
    );
    let pii = &c.dlp.profiles["pii"];
    assert_eq!(
        pii.detectors,
        Some(vec!["credit_card".to_string(), "email".to_string()])
    );
    assert_eq!(
        pii.actions["CREDIT_CARD"],
        Action::Mask {
            with: '#',
            keep_last: 4
        }
    );
    assert_eq!(pii.actions["EMAIL_ADDRESS"], Action::Tokenize);
    assert_eq!(
        pii.default_action,
        Action::Mask {
            with: '*',
            keep_last: 0
        }
    );
    assert_eq!(pii.columns["ssn"], Action::Redact);
    assert_eq!(
        pii.fields["customer.ssn"],
        Action::Mask {
            with: '*',
            keep_last: 2
        }
    );
    assert_eq!(pii.on_unscannable, Unscannable::Pass);
    assert_eq!(pii.min_classification, Classification::Internal);
    assert_eq!(
        pii.classification_for("EMAIL_ADDRESS"),
        Classification::Confidential
    );
    assert_eq!(c.dlp.profiles["strict"].on_unscannable, Unscannable::Block);
    assert!(
        c.dlp
            .token_secret_file
            .ends_with("data/keys/dlp-token.secret")
    );
}

#[test]
fn profile_problems_are_reported_at_their_lines() {
    let f = Fixture::valid();
    let text = format!(
        r#"{GATEHOUSE}dlp_profile = "nope"

[dlp.profiles.bad]
detectors = ["credit_card", "no_such_detector"]
default_action = "shred"
on_unscannable = "maybe"
columns = {{ ssn = {{ action = "redact", keep_last = 2 }} }}
[dlp.profiles.bad.actions]
CREDIT_CARD = {{ action = "mask", char = "ab", keep_last = 99 }}
NOT_AN_ENTITY = "redact"
US_SSN = 5
EMAIL_ADDRESS = {{ keep_last = 1 }}
"#
    );
    f.write("config/gatehouse.toml", &text);
    let errors = f.errors();
    let at = |needle| Some(line_of(&text, needle));
    let g = "gatehouse.toml";
    assert_error(
        &errors,
        g,
        at("dlp_profile = \"nope\""),
        &["unknown DLP profile \"nope\""],
    );
    assert_error(
        &errors,
        g,
        at("no_such_detector"),
        &["unknown detector \"no_such_detector\""],
    );
    assert_error(&errors, g, at("shred"), &["unknown action \"shred\""]);
    assert_error(&errors, g, at("maybe"), &["on_unscannable \"maybe\""]);
    assert_error(
        &errors,
        g,
        at("columns ="),
        &["char and keep_last are for mask"],
    );
    assert_error(
        &errors,
        g,
        at("char = \"ab\""),
        &["one printable ASCII character"],
    );
    assert_error(&errors, g, at("char = \"ab\""), &["keep_last 99"]);
    assert_error(
        &errors,
        g,
        at("NOT_AN_ENTITY"),
        &["unknown entity \"NOT_AN_ENTITY\"", "CREDIT_CARD"],
    );
    assert_error(
        &errors,
        g,
        at("US_SSN = 5"),
        &["US_SSN: an action is a name"],
    );
    assert_error(&errors, g, at("EMAIL_ADDRESS ="), &["needs action"]);
}

#[test]
fn grant_overrides_must_exist_and_be_at_least_as_strict() {
    let f = Fixture::valid();
    let text = format!(
        r#"{GATEHOUSE}dlp_profile = "base"
[dlp.profiles.base]
on_unscannable = "block"
[dlp.profiles.base.actions]
CREDIT_CARD = {{ action = "mask", keep_last = 4 }}
PRIVATE_KEY = "block"
[dlp.profiles.weak]
on_unscannable = "pass"
[dlp.profiles.weak.actions]
CREDIT_CARD = {{ action = "mask", keep_last = 6 }}
"#
    );
    f.write("config/gatehouse.toml", &text);
    let acme = ACME.replace(
        "actions = [\"read\"]",
        "actions = [\"read\"]\ndlp_profile = \"weak\"",
    );
    f.partner("acme", &acme);
    let other = ACME.replace("id = \"acme\"", "id = \"other\"").replace(
        "actions = [\"read\"]",
        "actions = [\"read\"]\ndlp_profile = \"gone\"",
    );
    f.partner("other", &other);
    let errors = f.errors();
    assert_error(
        &errors,
        "acme.toml",
        Some(line_of(&acme, "dlp_profile")),
        &[
            "weaker than the share's profile \"base\"",
            "CREDIT_CARD: mask",
            "PRIVATE_KEY: mask is weaker than block",
            "on_unscannable pass",
        ],
    );
    assert_error(
        &errors,
        "other.toml",
        Some(line_of(&other, "dlp_profile")),
        &["unknown DLP profile \"gone\""],
    );
}

/// Key material the gateway reads must never be reachable through a share.
#[test]
fn key_files_are_kept_out_of_fs_roots() {
    for (table, named) in [
        (
            "[dlp]\ntoken_secret_file = \"../data/objects/demo/secret\"",
            "dlp.token_secret_file",
        ),
        (
            "[dlp]\nfpe_key_file = \"../data/objects/demo/fpe.key\"",
            "dlp.fpe_key_file",
        ),
        (
            "[key_service]\ntype = \"local\"\nfile = \"../data/objects/demo/kek.json\"",
            "local key service",
        ),
    ] {
        let f = Fixture::valid();
        f.write("data/objects/demo/fpe.key", "not a key");
        f.write("config/gatehouse.toml", &format!("{GATEHOUSE}\n{table}\n"));
        let errors = f.errors();
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains(named) && e.message.contains("overlaps")),
            "{named}: {errors:?}"
        );
    }
}

#[test]
fn grants_cannot_reach_the_staging_prefix() {
    let f = Fixture::valid();
    let acme = ACME.replace(
        "actions = [\"read\"]",
        "prefix = \".gatehouse-staging/x\"\nactions = [\"read\"]",
    );
    f.partner("acme", &acme);
    assert_error(
        &f.errors(),
        "acme.toml",
        Some(line_of(&acme, "prefix =")),
        &["reserved for the gateway's staged uploads"],
    );
}

#[test]
fn tokenize_fpe_needs_a_readable_key_file_and_headerless_csv_names_columns_by_position() {
    let f = Fixture::valid();
    let text = format!(
        r#"{GATEHOUSE}dlp_profile = "cards"
[dlp]
fpe_key_file = "no-such-fpe.json"
[dlp.profiles.cards]
fields = {{ "card" = "tokenize_fpe" }}
[dlp.profiles.cards.actions]
CREDIT_CARD = "tokenize_fpe"
[dlp.profiles.raw]
csv = {{ has_header = false }}
columns = {{ "2" = "redact", ssn = "redact" }}
"#
    );
    f.write("config/gatehouse.toml", &text);
    let errors = f.errors();
    let g = "gatehouse.toml";
    let at = |needle| Some(line_of(&text, needle));
    assert_error(
        &errors,
        g,
        at("fpe_key_file ="),
        &["dlp.fpe_key_file", "no-such-fpe.json"],
    );
    assert_error(
        &errors,
        g,
        at("columns = "),
        &["column \"ssn\"", "by its position"],
    );
    assert!(
        !errors.iter().any(|e| e.message.contains("column \"2\"")),
        "{errors:?}"
    );

    // Without the key file setting at all, the profile itself is refused.
    let without = text.replace("[dlp]\nfpe_key_file = \"no-such-fpe.json\"\n", "");
    f.write("config/gatehouse.toml", &without);
    assert_error(
        &f.errors(),
        g,
        Some(line_of(&without, "[dlp.profiles.cards]")),
        &["uses tokenize_fpe but [dlp] has no fpe_key_file"],
    );
}
