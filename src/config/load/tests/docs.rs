//! The full examples in docs/config.md load, so the reference stays true to the code.

use super::*;

/// The first ```toml block after the heading `heading` in docs/config.md.
fn example(heading: &str) -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config.md"))
        .unwrap();
    let after = &doc[doc.find(heading).unwrap_or_else(|| panic!("{heading:?}"))..];
    let start = after.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + after[start..].find("```").unwrap();
    after[start..end].to_owned()
}

#[test]
fn documented_examples_load() {
    let f = Fixture::empty();
    f.write("config/gatehouse.toml", &example("### gatehouse.toml"));
    f.write(
        "config/partners/acme.toml",
        &example("### partners/acme.toml"),
    );
    f.write("config/partners/keys/acme-2025.pub.pem", &public_key_pem());
    f.write(
        "config/partners/secrets/acme.external-id",
        "0123456789abcdef0123\n",
    );
    let c = f.config();
    assert_eq!(c.token.signing_keys[0].id, "gw-2");
    assert_eq!(c.shares["exports"].prefix, "outbound/");
    let acme = &c.partners["acme"];
    assert_eq!(acme.grants[0].prefix, "acme/reports/");
    assert_eq!(acme.max_session, Duration::from_secs(3600));
    assert_eq!(
        c.shares["exports"].default_classification,
        crate::config::Classification::Confidential
    );
    assert_eq!(c.token_limits, crate::config::TokenLimits::default());
    assert_eq!(acme.conditions.allow_cidrs.len(), 2);
    assert_eq!(acme.grants[0].conditions.windows.len(), 2);
    assert!(acme.grants[1].conditions.require_mfa);
    assert_eq!(acme.deny[0].prefix, "acme/reports/hr/");
    assert_eq!(acme.rate_limits.concurrent, Some(16));
    assert_eq!(
        c.shares["exports"].dlp_profile.as_deref(),
        Some("partner-pii")
    );
    assert_eq!(
        acme.grants[0].conditions.dlp_profile.as_deref(),
        Some("partner-strict")
    );
    assert_eq!(c.dlp.profiles.len(), 2);
}
