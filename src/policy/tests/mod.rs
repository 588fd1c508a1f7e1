//! Tests of policy. Here: grant matching and listing plans (no conditions). `evaluate.rs`:
//! every condition and deny rule on loaded configs; `listing.rs`: list scopes, visible shares,
//! token deadlines; `window.rs`: time windows across DST; `explain.rs`: `policy explain`.

use super::*;
use crate::config::{ActionSet, Config, PartnerStatus};
use std::time::Duration;

mod evaluate;
mod explain;
mod listing;
mod window;

/// gatehouse.toml for [`load`]: shares `exports` (default classification restricted) and
/// `public` (default public).
const GATEHOUSE: &str = r#"data_dir = "../data"

[stores.local]
type = "fs"
root = "../data/objects"

[shares.exports]
store = "local"
bucket = "exports"

[shares.public]
store = "local"
bucket = "public"
default_classification = "public"
"#;

/// Loads a config whose only partner, `acme`, has `body` after its required keys (top-level
/// conditions first, then `[[grants]]`, `[[deny]]` ...). Keep the directory alive.
fn load(body: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("config/gatehouse.toml", GATEHOUSE);
    write(
        "config/partners/acme.pub.pem",
        &rcgen::KeyPair::generate().unwrap().public_key_pem(),
    );
    let partner = format!(
        r#"id = "acme"
display_name = "Acme"
owner = "owner@example.com"
contract = "C-1"
justification = "tests"
status = "active"
external_id = "0123456789abcdef"
{body}

[[keys]]
id = "k1"
public_key_file = "acme.pub.pem"
"#
    );
    write("config/partners/acme.toml", &partner);
    let cfg = crate::config::load(&dir.path().join("config/gatehouse.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, cfg)
}

fn grant(share: &str, prefix: &str, actions: &[Action]) -> Grant {
    Grant {
        share: share.into(),
        prefix: prefix.into(),
        actions: actions.iter().copied().collect::<ActionSet>(),
        conditions: Default::default(),
        rate_limits: Default::default(),
        approved_by: None,
    }
}

fn partner(grants: Vec<Grant>) -> PartnerConfig {
    PartnerConfig {
        id: "acme".into(),
        display_name: String::new(),
        owner: String::new(),
        contract: String::new(),
        justification: String::new(),
        status: PartnerStatus::Active,
        review_by: None,
        valid_until: None,
        conditions: Default::default(),
        deny: vec![],
        rate_limits: Default::default(),
        external_id: "x".repeat(16),
        max_session: Duration::from_secs(3600),
        keys: vec![],
        federation: None,
        grants,
        file: "acme.toml".into(),
    }
}

fn scopes(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

#[test]
fn deny_by_default_and_by_prefix_segment() {
    let p = partner(vec![grant(
        "exports",
        "acme/",
        &[Action::Read, Action::List],
    )]);
    let sc = scopes(&["exports"]);
    assert_eq!(
        authorize(&p, &sc, "exports", "acme/x.csv", Action::Read),
        Ok(())
    );
    assert_eq!(
        authorize(&p, &sc, "exports", "acme/deep/x.csv", Action::Read),
        Ok(())
    );
    assert_eq!(
        authorize(&p, &sc, "exports", "acme-other/x.csv", Action::Read),
        Err(Denial::NoGrant)
    );
    assert_eq!(
        authorize(&p, &sc, "exports", "acme", Action::Read),
        Err(Denial::NoGrant)
    );
    assert_eq!(
        authorize(&p, &sc, "exports", "acme/x.csv", Action::Write),
        Err(Denial::NoGrant)
    );
    assert_eq!(
        authorize(&p, &sc, "exports", "acme/x.csv", Action::Delete),
        Err(Denial::NoGrant)
    );
    assert_eq!(
        authorize(&p, &sc, "other", "acme/x.csv", Action::Read),
        Err(Denial::ShareNotGranted)
    );
    assert_eq!(
        authorize(
            &p,
            &scopes(&["other"]),
            "exports",
            "acme/x.csv",
            Action::Read
        ),
        Err(Denial::ShareNotInScope)
    );
}

#[test]
fn visible_shares_are_granted_and_scoped() {
    let p = partner(vec![
        grant("b", "", &[Action::Read]),
        grant("a", "x/", &[Action::List]),
        grant("a", "y/", &[Action::Read]),
    ]);
    assert_eq!(visible_shares(&p, &scopes(&["a", "b"])), vec!["a", "b"]);
    assert_eq!(visible_shares(&p, &scopes(&["b"])), vec!["b"]);
}

fn plan(grants: &[Grant], req: &str, delim: Option<&str>) -> Vec<ListSource> {
    let refs: Vec<&Grant> = grants.iter().collect();
    list_plan(&refs, req, delim)
}

fn up(p: &str) -> ListSource {
    ListSource::Upstream(p.into())
}

#[test]
fn list_narrows_to_grant_prefixes() {
    let g = [grant("s", "acme/", &[Action::List])];
    assert_eq!(plan(&g, "", None), vec![up("acme/")]);
    assert_eq!(plan(&g, "ac", None), vec![up("acme/")]);
    assert_eq!(plan(&g, "acme/sub/", None), vec![up("acme/sub/")]);
    assert_eq!(plan(&g, "acme/sub/", Some("/")), vec![up("acme/sub/")]);
    assert_eq!(plan(&g, "b", None), vec![]);
    assert_eq!(plan(&g, "acme", None), vec![up("acme/")]);
}

#[test]
fn list_rolls_grant_prefixes_into_folders_at_the_root() {
    let g = [
        grant("s", "acme/in/", &[Action::List]),
        grant("s", "acme/out/", &[Action::List]),
        grant("s", "zeta/", &[Action::List]),
    ];
    assert_eq!(
        plan(&g, "", Some("/")),
        vec![
            ListSource::Folder {
                common_prefix: "acme/".into(),
                probes: vec!["acme/in/".into(), "acme/out/".into()]
            },
            ListSource::Folder {
                common_prefix: "zeta/".into(),
                probes: vec!["zeta/".into()]
            },
        ]
    );
    assert_eq!(
        plan(&g, "acme/", Some("/")),
        vec![
            ListSource::Folder {
                common_prefix: "acme/in/".into(),
                probes: vec!["acme/in/".into()]
            },
            ListSource::Folder {
                common_prefix: "acme/out/".into(),
                probes: vec!["acme/out/".into()]
            },
        ]
    );
    assert_eq!(
        plan(&g, "", None),
        vec![up("acme/in/"), up("acme/out/"), up("zeta/")]
    );
}

#[test]
fn list_ignores_grants_without_list_and_merges_nested_grants() {
    let g = [
        grant("s", "a/", &[Action::Read]),
        grant("s", "b/", &[Action::List]),
        grant("s", "b/c/", &[Action::List]),
    ];
    assert_eq!(plan(&g, "", None), vec![up("b/")]);
    let whole = [
        grant("s", "", &[Action::List]),
        grant("s", "b/", &[Action::List]),
    ];
    assert_eq!(plan(&whole, "", Some("/")), vec![up("")]);
    assert_eq!(plan(&whole, "q", Some("/")), vec![up("q")]);
}
