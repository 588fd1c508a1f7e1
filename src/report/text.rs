//! The report as a plain-text table for a terminal or an e-mail.
//!
//! Names from the trail (a refused token request's claimed partner id, reasons) are printed
//! with control characters replaced, so a crafted name cannot drive the terminal.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::Report;

pub fn table(r: &Report) -> String {
    let mut o = String::new();
    let when = |t: Option<jiff::Timestamp>| t.map_or("-".to_string(), short_time);
    let _ = writeln!(
        o,
        "gatehouse report {} .. {}: {} record(s) in {} file(s)\n",
        when(r.since),
        r.until.map_or("now".to_string(), short_time),
        r.records,
        r.files
    );
    let _ = writeln!(
        o,
        "{:<16} {:>8} {:>8} {:>7} {:>10} {:>10} {:>7} {:>4} {:>8} {:>6} {:<17} {:<17}",
        "PARTNER",
        "REQUESTS",
        "ALLOWED",
        "DENIED",
        "BYTES_IN",
        "BYTES_OUT",
        "OBJECTS",
        "IPS",
        "SESSIONS",
        "TOKENS",
        "FIRST",
        "LAST"
    );
    for (id, p) in &r.partners {
        let name = if p.configured {
            clean(id)
        } else {
            format!("{}*", clean(id))
        };
        let _ = writeln!(
            o,
            "{:<16} {:>8} {:>8} {:>7} {:>10} {:>10} {:>7} {:>4} {:>8} {:>6} {:<17} {:<17}",
            name,
            p.requests,
            p.allowed,
            p.denied,
            p.bytes_in,
            p.bytes_out,
            p.objects_touched,
            p.source_ips.len(),
            p.sessions,
            format!("{}/{}", p.tokens_issued, p.tokens_refused),
            when(p.first_access),
            when(p.last_access)
        );
    }
    if r.partners.values().any(|p| !p.configured) {
        let _ = writeln!(o, "* not in the configuration given");
    }
    let _ = writeln!(o, "TOKENS: issued/refused; times UTC\n");
    section(&mut o, "Denials by reason", r, |p| {
        counts(&p.denials_by_reason)
    });
    section(&mut o, "Token refusals by reason", r, |p| {
        counts(&p.token_refusals_by_reason)
    });
    section(&mut o, "DLP findings (entity/action: count)", r, |p| {
        let flat: BTreeMap<String, u64> = p
            .dlp_findings
            .iter()
            .flat_map(|(e, actions)| actions.iter().map(move |(a, n)| (format!("{e}/{a}"), *n)))
            .collect();
        counts(&flat)
    });
    section(&mut o, "DLP outcomes", r, |p| counts(&p.dlp_outcomes));
    section(&mut o, "Alerts", r, |p| counts(&p.alerts));
    section(&mut o, "Source IPs", r, |p| {
        p.source_ips
            .iter()
            .map(|ip| clean(ip))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let u = &r.unattributed;
    let _ = writeln!(
        o,
        "Unattributed refusals (no valid token, unknown partner): {} from {} IP(s){}{}",
        u.refusals,
        u.source_ips,
        if u.by_reason.is_empty() { "" } else { ": " },
        counts(&u.by_reason)
    );
    o
}

fn section(o: &mut String, title: &str, r: &Report, line: impl Fn(&super::PartnerUsage) -> String) {
    let rows: Vec<(String, String)> = r
        .partners
        .iter()
        .map(|(id, p)| (clean(id), line(p)))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "{title}");
    for (id, l) in rows {
        let _ = writeln!(o, "  {id:<16} {l}");
    }
    let _ = writeln!(o);
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, n)| format!("{} {n}", clean(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn short_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}

/// `s` with control characters replaced by `?`.
pub(super) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
