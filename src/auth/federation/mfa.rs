//! Whether an identity provider's statement about a login shows multi-factor authentication,
//! and the `amr` the gateway's session carries for it.
//!
//! The rule: the login was multi-factor when the IdP's `amr` (RFC 8176) contains `mfa`; or
//! contains a possession factor (`otp`, `hwk`, `swk`, `sc`, `sms`, `tel`) together with a
//! knowledge (`pwd`, `pin`, `kba`) or inherence factor (`fpt`, `face`, `iris`, `retina`,
//! `vbm`); or when its `acr` is one the partner file lists in `mfa_acr`. A possession factor
//! alone (a passkey without PIN, an SMS code without password) is one factor.
//!
//! The policy (`require_mfa`) reads the session `amr` and takes any second-factor value as
//! enough, so the session `amr` is the gateway's verdict, not the IdP's list: when the rule
//! holds it is the IdP's registered values plus `mfa`; when it does not, every value that
//! the policy would read as a second factor is dropped.

use crate::policy::SECOND_FACTORS;

/// RFC 8176 "something you have".
const POSSESSION: [&str; 6] = ["otp", "hwk", "swk", "sc", "sms", "tel"];
/// RFC 8176 "something you know".
const KNOWLEDGE: [&str; 3] = ["pwd", "pin", "kba"];
/// RFC 8176 "something you are".
const INHERENCE: [&str; 5] = ["fpt", "face", "iris", "retina", "vbm"];
/// Every RFC 8176 value; others are not carried into the session.
const REGISTERED: [&str; 20] = [
    "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pop", "pwd", "rba",
    "retina", "sc", "sms", "swk", "tel", "user", "vbm",
];

/// Whether the IdP's `amr` and `acr` show a multi-factor login under the rule above.
pub(crate) fn is_multi_factor(amr: &[String], acr: Option<&str>, mfa_acr: &[String]) -> bool {
    let has = |set: &[&str]| amr.iter().any(|m| set.contains(&m.as_str()));
    let by_amr = has(&["mfa"]) || (has(&POSSESSION) && (has(&KNOWLEDGE) || has(&INHERENCE)));
    let by_acr = acr.is_some_and(|a| mfa_acr.iter().any(|m| m == a));
    by_amr || by_acr
}

/// The session `amr` for a federated login: sorted, registered values only, with `mfa`
/// exactly when `multi_factor`, and no value the policy reads as a second factor otherwise.
pub(crate) fn session_amr(idp_amr: &[String], multi_factor: bool) -> Vec<String> {
    let mut out: Vec<String> = idp_amr
        .iter()
        .filter(|m| REGISTERED.contains(&m.as_str()) && m.as_str() != "pop")
        .filter(|m| multi_factor || !SECOND_FACTORS.contains(&m.as_str()))
        .cloned()
        .collect();
    if multi_factor {
        out.push("mfa".to_owned());
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mfa_needs_two_kinds_of_factor_or_an_mfa_statement() {
        let none: &[String] = &[];
        for yes in [
            &["mfa"][..],
            &["pwd", "mfa"],
            &["pwd", "otp"],
            &["hwk", "pin"],
            &["swk", "fpt"],
            &["sms", "pwd"],
            &["sc", "pin"],
        ] {
            assert!(is_multi_factor(&v(yes), None, none), "{yes:?}");
        }
        for no in [
            &[][..],
            &["pwd"],
            &["otp"],
            &["hwk"],
            &["hwk", "otp"],
            &["pwd", "kba"],
            &["fpt", "face"],
            &["pop"],
            &["user", "hwk"],
            &["MFA"],
            &["wia", "rba", "geo", "mca"],
        ] {
            assert!(!is_multi_factor(&v(no), None, none), "{no:?}");
        }
    }

    #[test]
    fn an_acr_counts_only_when_configured() {
        let mfa_acr = v(&["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]);
        let acr = Some(mfa_acr[0].as_str());
        assert!(is_multi_factor(&v(&["pwd"]), acr, &mfa_acr));
        assert!(!is_multi_factor(&v(&["pwd"]), acr, &[]));
        assert!(!is_multi_factor(&v(&["pwd"]), Some("urn:other"), &mfa_acr));
    }

    #[test]
    fn the_session_amr_satisfies_the_policy_exactly_when_the_rule_holds() {
        use crate::policy::conditions::has_second_factor;
        let cases: [(&[&str], bool); 6] = [
            (&["pwd", "otp"], true),
            (&["otp"], false),
            (&["hwk"], false),
            (&["pwd"], false),
            (&["mfa"], true),
            (&["pwd", "x-custom", "pop"], false),
        ];
        for (amr, mfa) in cases {
            let amr = v(amr);
            let rule = is_multi_factor(&amr, None, &[]);
            assert_eq!(rule, mfa, "{amr:?}");
            let session = session_amr(&amr, rule);
            assert_eq!(has_second_factor(&session), mfa, "{amr:?} -> {session:?}");
            assert!(!session.iter().any(|m| m == "pop" || m == "x-custom"));
        }
        assert_eq!(
            session_amr(&v(&["otp", "pwd"]), true),
            v(&["mfa", "otp", "pwd"])
        );
        assert_eq!(
            session_amr(&v(&["otp", "swk"]), false),
            Vec::<String>::new()
        );
        // An acr-based verdict adds mfa and keeps the factors the IdP named.
        assert_eq!(session_amr(&v(&["hwk"]), true), v(&["hwk", "mfa"]));
    }
}
