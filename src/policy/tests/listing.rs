//! `list_scope`, `shares_visible` and `token_deadline`: what a listing, `GET /` and a token
//! may cover now.

use jiff::Timestamp;

use super::evaluate::MONDAY;
use super::load;
use crate::config::Config;
use crate::policy::{
    Decision, Denial, ListSource, Rule, Session, list_scope, shares_visible, token_deadline,
};

fn session<'a>(cfg: &'a Config, scopes: &'a [String], at: &str) -> Session<'a> {
    Session {
        config: cfg,
        partner: &cfg.partners["acme"],
        scopes,
        client_ip: Some("192.0.2.7".parse().unwrap()),
        amr: &[],
        now: at.parse().unwrap(),
    }
}

#[test]
fn listing_narrows_to_grants_whose_conditions_hold_and_skips_denied_prefixes() {
    let (_d, cfg) = load(
        "[[grants]]\nshare = \"exports\"\nprefix = \"day\"\nactions = [\"list\"]\nwindows = [{ days = \"mon-fri\", from = \"08:00\", to = \"18:00\", tz = \"Europe/Berlin\" }]\n[[grants]]\nshare = \"exports\"\nprefix = \"always\"\nactions = [\"list\"]\n[[grants]]\nshare = \"public\"\nactions = [\"read\"]\nvalid_until = \"2026-01-01T00:00:00Z\"\n[[deny]]\nshare = \"exports\"\nprefix = \"always/hidden\"\nactions = [\"list\"]\n",
    );
    let scopes = ["exports".to_owned(), "public".to_owned()];
    let up = |p: &str| ListSource::Upstream(p.into());
    let monday = session(&cfg, &scopes, MONDAY);
    let scope = list_scope(&monday, "exports").unwrap();
    assert_eq!(scope.plan("", None), vec![up("always/"), up("day/")]);
    assert_eq!(scope.plan("always/hidden/", None), vec![]);
    assert!(scope.allows("always/x"));
    assert!(!scope.allows("always/hidden/"));
    assert!(!scope.allows("always/hidden/x"));
    let saturday = session(&cfg, &scopes, "2026-03-07T09:00:00Z");
    let scope = list_scope(&saturday, "exports").unwrap();
    assert_eq!(scope.plan("", None), vec![up("always/")]);
    assert_eq!(
        list_scope(&monday, "public").unwrap_err(),
        Decision::Deny {
            denial: Denial::NoGrant,
            rule: Rule::Grants
        }
    );
    assert_eq!(
        shares_visible(&monday),
        vec!["exports"],
        "public's grant has ended"
    );
}

#[test]
fn a_listing_with_every_grant_closed_reports_why() {
    let (_d, cfg) = load(
        "[[grants]]\nshare = \"exports\"\nactions = [\"list\"]\nallow_cidrs = [\"10.0.0.0/8\"]\n",
    );
    let scopes = ["exports".to_owned()];
    assert_eq!(
        list_scope(&session(&cfg, &scopes, MONDAY), "exports").unwrap_err(),
        Decision::Deny {
            denial: Denial::IpNotAllowed,
            rule: Rule::Grant(0)
        }
    );
}

#[test]
fn tokens_never_outlive_the_grants_in_scope() {
    let (_d, cfg) = load(
        "valid_until = \"2027-01-01T00:00:00Z\"\n[[grants]]\nshare = \"exports\"\nactions = [\"read\"]\nvalid_until = \"2026-06-01T00:00:00Z\"\n[[grants]]\nshare = \"exports\"\nprefix = \"old\"\nactions = [\"read\"]\nvalid_until = \"2026-01-01T00:00:00Z\"\n[[grants]]\nshare = \"public\"\nactions = [\"read\"]\nvalid_until = \"2026-04-01T00:00:00Z\"\n",
    );
    let p = &cfg.partners["acme"];
    let now: Timestamp = MONDAY.parse().unwrap();
    let scoped = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let at = |s: &str| Some(s.parse::<Timestamp>().unwrap());
    assert_eq!(
        token_deadline(p, &scoped(&["exports"]), now),
        at("2026-06-01T00:00:00Z"),
        "the ended grant on old/ does not count"
    );
    assert_eq!(
        token_deadline(p, &scoped(&["exports", "public"]), now),
        at("2026-04-01T00:00:00Z")
    );
    assert_eq!(
        token_deadline(p, &scoped(&[]), now),
        at("2027-01-01T00:00:00Z"),
        "the partner's"
    );
    let late: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        token_deadline(p, &scoped(&["exports"]), late),
        at("2027-01-01T00:00:00Z")
    );
}
