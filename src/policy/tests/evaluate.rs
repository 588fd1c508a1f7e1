//! `evaluate`, `list_scope`, `shares_visible` and `token_deadline` on loaded configurations:
//! allow and deny for every condition, at partner and grant level.

use std::net::IpAddr;

use jiff::Timestamp;

use super::load;
use crate::config::{Action, Classification, Config};
use crate::policy::{Allowed, Decision, Denial, Object, Request, Rule, Session, evaluate};

/// A Monday, 10:00 in Berlin.
pub const MONDAY: &str = "2026-03-02T09:00:00Z";

/// The facts of one test request; defaults: read `exports/a/b.csv` from 192.0.2.7 on
/// [`MONDAY`] with amr `["pop"]` and no object facts.
struct Ask<'a> {
    cfg: &'a Config,
    share: &'a str,
    key: &'a str,
    action: Action,
    ip: Option<&'a str>,
    at: &'a str,
    amr: &'a [&'a str],
    object: Option<Object>,
}

fn ask(cfg: &Config) -> Ask<'_> {
    Ask {
        cfg,
        share: "exports",
        key: "a/b.csv",
        action: Action::Read,
        ip: Some("192.0.2.7"),
        at: MONDAY,
        amr: &["pop"],
        object: None,
    }
}

impl Ask<'_> {
    fn decide(&self) -> Decision {
        let partner = &self.cfg.partners["acme"];
        let scopes: Vec<String> = partner.grants.iter().map(|g| g.share.clone()).collect();
        let amr: Vec<String> = self.amr.iter().map(|s| s.to_string()).collect();
        let session = Session {
            config: self.cfg,
            partner,
            scopes: &scopes,
            client_ip: self.ip.map(|ip| ip.parse::<IpAddr>().unwrap()),
            amr: &amr,
            now: self.at.parse().unwrap(),
        };
        evaluate(&Request {
            session: &session,
            share: self.share,
            key: self.key,
            action: self.action,
            object: self.object,
        })
    }

    /// The reason code, or `"allow"`.
    fn code(&self) -> &'static str {
        match self.decide() {
            Decision::Allow(_) => "allow",
            Decision::Deny { denial, .. } => denial.reason(),
        }
    }
}

fn obj(classification: Option<Classification>, size: Option<u64>) -> Option<Object> {
    Some(Object {
        classification,
        size,
    })
}

const READ_ALL: &str =
    "[[grants]]\nshare = \"exports\"\nactions = [\"read\", \"list\", \"write\", \"delete\"]\n";

#[test]
fn source_networks_ipv4_ipv6_and_mapped() {
    let (_d, cfg) = load(&format!(
        "{READ_ALL}allow_cidrs = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n"
    ));
    for (ip, want) in [
        (Some("192.0.2.7"), "allow"),
        (Some("::ffff:192.0.2.7"), "allow"),
        (Some("2001:db8:1::5"), "allow"),
        (Some("198.51.100.1"), "ip_not_allowed"),
        (Some("2001:db9::1"), "ip_not_allowed"),
        (None, "ip_not_allowed"),
    ] {
        assert_eq!(Ask { ip, ..ask(&cfg) }.code(), want, "{ip:?}");
    }
}

#[test]
fn a_grant_narrows_its_partner() {
    let (_d, cfg) = load(&format!(
        "allow_cidrs = [\"10.0.0.0/8\"]\n{READ_ALL}allow_cidrs = [\"10.1.0.0/16\"]\n"
    ));
    let at = |ip| {
        Ask {
            ip: Some(ip),
            ..ask(&cfg)
        }
        .decide()
    };
    assert!(at("10.1.2.3").is_allow());
    assert_eq!(
        at("10.2.0.1"),
        Decision::Deny {
            denial: Denial::IpNotAllowed,
            rule: Rule::Grant(0)
        }
    );
    assert_eq!(
        at("192.0.2.7"),
        Decision::Deny {
            denial: Denial::IpNotAllowed,
            rule: Rule::Partner
        }
    );
}

#[test]
fn time_windows_at_partner_and_grant_level() {
    let (_d, cfg) = load(&format!(
        "windows = [{{ days = \"mon-fri\", from = \"08:00\", to = \"18:00\", tz = \"Europe/Berlin\" }}]\n{READ_ALL}windows = [{{ days = \"mon\", from = \"09:00\", to = \"12:00\", tz = \"Europe/Berlin\" }}]\n"
    ));
    let at = |at| Ask { at, ..ask(&cfg) }.decide();
    assert!(at(MONDAY).is_allow());
    let outside = |rule| Decision::Deny {
        denial: Denial::OutsideTimeWindow,
        rule,
    };
    // Monday 13:00 Berlin: inside the partner's window, outside the grant's.
    assert_eq!(at("2026-03-02T12:00:00Z"), outside(Rule::Grant(0)));
    // Saturday: outside the partner's.
    assert_eq!(at("2026-03-07T09:00:00Z"), outside(Rule::Partner));
}

#[test]
fn validity_starts_inclusive_and_ends_exclusive() {
    let (_d, cfg) = load(&format!(
        "valid_from = \"2026-01-01T00:00:00Z\"\nvalid_until = \"2027-01-01T00:00:00Z\"\n{READ_ALL}valid_from = \"2026-03-01T00:00:00Z\"\nvalid_until = \"2026-04-01T00:00:00Z\"\n"
    ));
    let at = |at| Ask { at, ..ask(&cfg) }.decide();
    let deny = |denial, rule| Decision::Deny { denial, rule };
    assert_eq!(
        at("2025-12-31T23:59:59Z"),
        deny(Denial::NotYetValid, Rule::Partner)
    );
    assert_eq!(
        at("2026-02-28T23:59:59Z"),
        deny(Denial::NotYetValid, Rule::Grant(0))
    );
    assert!(at("2026-03-01T00:00:00Z").is_allow());
    assert!(at("2026-03-31T23:59:59Z").is_allow());
    assert_eq!(
        at("2026-04-01T00:00:00Z"),
        deny(Denial::AccessExpired, Rule::Grant(0))
    );
    assert_eq!(
        at("2027-01-01T00:00:00Z"),
        deny(Denial::AccessExpired, Rule::Partner)
    );
}

#[test]
fn mfa_needs_a_second_factor_in_amr() {
    let (_d, cfg) = load(&format!("{READ_ALL}require_mfa = true\n"));
    for (amr, want) in [
        (&["pop"][..], "mfa_required"),
        (&[][..], "mfa_required"),
        (&["pwd", "fpt"][..], "mfa_required"),
        (&["pwd", "otp"][..], "allow"),
        (&["mfa"][..], "allow"),
        (&["hwk"][..], "allow"),
        (&["swk"][..], "allow"),
    ] {
        assert_eq!(Ask { amr, ..ask(&cfg) }.code(), want, "{amr:?}");
    }
}

#[test]
fn classification_ceilings_use_the_share_default_when_the_object_has_none() {
    let (_d, cfg) = load(
        "max_classification = \"confidential\"\n[[grants]]\nshare = \"exports\"\nactions = [\"read\", \"write\", \"delete\", \"list\"]\nmax_classification = \"internal\"\n[[grants]]\nshare = \"public\"\nactions = [\"read\"]\n",
    );
    let with = |share, action, c| Ask {
        share,
        action,
        object: obj(c, Some(10)),
        ..ask(&cfg)
    };
    use Classification::*;
    assert_eq!(
        with("exports", Action::Read, None).code(),
        "classification_exceeded"
    );
    assert_eq!(
        with("exports", Action::Read, Some(Internal)).code(),
        "allow"
    );
    assert_eq!(with("exports", Action::Read, Some(Public)).code(), "allow");
    assert_eq!(
        with("exports", Action::Write, Some(Confidential)).code(),
        "classification_exceeded"
    );
    assert_eq!(
        with("exports", Action::Delete, Some(Restricted)).code(),
        "classification_exceeded"
    );
    // Share `public` defaults to public; the partner ceiling (confidential) still applies.
    assert_eq!(with("public", Action::Read, None).code(), "allow");
    assert_eq!(
        with("public", Action::Read, Some(Confidential)).code(),
        "allow"
    );
    assert_eq!(
        with("public", Action::Read, Some(Restricted)).code(),
        "classification_exceeded"
    );
    // Listing has no object.
    assert_eq!(with("exports", Action::List, None).code(), "allow");
}

#[test]
fn object_size_limits_reads_and_writes_and_the_smaller_limit_wins() {
    let (_d, cfg) = load(&format!(
        "max_object_size = \"2KiB\"\n{READ_ALL}max_object_size = 1024\n"
    ));
    let sized = |action, size| Ask {
        action,
        object: obj(Some(Classification::Public), size),
        ..ask(&cfg)
    };
    assert_eq!(sized(Action::Read, Some(1024)).code(), "allow");
    assert_eq!(sized(Action::Read, Some(1025)).code(), "object_too_large");
    assert_eq!(sized(Action::Write, Some(4096)).code(), "object_too_large");
    assert_eq!(sized(Action::Delete, Some(1 << 30)).code(), "allow");
    match sized(Action::Write, None).decide() {
        Decision::Allow(a) => assert_eq!(a.max_object_size, Some(1024)),
        d => panic!("{d:?}"),
    }
}

#[test]
fn object_checks_wait_for_object_facts() {
    let (_d, cfg) = load(&format!("{READ_ALL}max_classification = \"public\"\n"));
    let before = ask(&cfg).decide();
    assert_eq!(
        before,
        Decision::Allow(Allowed {
            grant: 0,
            max_object_size: None,
            object_checked: false
        })
    );
    let after = Ask {
        object: obj(None, Some(5)),
        ..ask(&cfg)
    };
    assert_eq!(after.code(), "classification_exceeded");
    assert!(!Denial::ClassificationExceeded.is_session_level());
}

#[test]
fn explicit_deny_wins_over_any_grant() {
    let (_d, cfg) = load(&format!(
        "{READ_ALL}\n[[deny]]\nshare = \"exports\"\nprefix = \"a/secret\"\n\n[[deny]]\nshare = \"exports\"\nprefix = \"a/\"\nactions = [\"delete\"]\n"
    ));
    let on = |key, action| Ask {
        key,
        action,
        ..ask(&cfg)
    };
    assert_eq!(
        on("a/secret/x", Action::Read).decide(),
        Decision::Deny {
            denial: Denial::ExplicitlyDenied,
            rule: Rule::Deny(0)
        }
    );
    assert_eq!(on("a/secret/x", Action::Write).code(), "explicitly_denied");
    assert_eq!(
        on("a/secrets.txt", Action::Read).code(),
        "allow",
        "whole segments"
    );
    assert_eq!(on("a/b.csv", Action::Delete).code(), "explicitly_denied");
    assert_eq!(on("a/b.csv", Action::Write).code(), "allow");
}

#[test]
fn share_scope_and_grant_coverage() {
    let (_d, cfg) = load("[[grants]]\nshare = \"exports\"\nprefix = \"a\"\nactions = [\"read\"]\n");
    assert_eq!(
        Ask {
            share: "public",
            ..ask(&cfg)
        }
        .code(),
        "share_not_granted"
    );
    assert_eq!(
        Ask {
            key: "ab/c",
            ..ask(&cfg)
        }
        .code(),
        "no_grant"
    );
    assert_eq!(
        Ask {
            action: Action::Write,
            ..ask(&cfg)
        }
        .code(),
        "no_grant"
    );
    let partner = &cfg.partners["acme"];
    let session = Session {
        config: &cfg,
        partner,
        scopes: &[],
        client_ip: None,
        amr: &[],
        now: Timestamp::UNIX_EPOCH,
    };
    let req = Request {
        session: &session,
        share: "exports",
        key: "a/b",
        action: Action::Read,
        object: None,
    };
    assert_eq!(evaluate(&req).into_result(), Err(Denial::ShareNotInScope));
}

#[test]
fn the_failure_closest_to_allowing_is_reported() {
    // Grant 1 covers everything up to internal; grant 2 covers x/ at any level with MFA.
    let (_d, cfg) = load(
        "[[grants]]\nshare = \"exports\"\nactions = [\"read\"]\nmax_classification = \"internal\"\n[[grants]]\nshare = \"exports\"\nprefix = \"x\"\nactions = [\"read\"]\nrequire_mfa = true\n",
    );
    let secret = |amr| Ask {
        key: "x/a",
        amr,
        object: obj(Some(Classification::Restricted), None),
        ..ask(&cfg)
    };
    assert_eq!(
        secret(&["pop"]).decide(),
        Decision::Deny {
            denial: Denial::ClassificationExceeded,
            rule: Rule::Grant(0)
        }
    );
    match secret(&["mfa"]).decide() {
        Decision::Allow(a) => assert_eq!(a.grant, 1),
        d => panic!("{d:?}"),
    }
}

#[test]
fn a_suspended_partner_is_refused_first() {
    let (_d, mut cfg) = load(READ_ALL);
    cfg.partners.get_mut("acme").unwrap().status = crate::config::PartnerStatus::Suspended;
    assert_eq!(ask(&cfg).code(), "partner_suspended");
    assert!(Denial::PartnerSuspended.is_session_level());
}
