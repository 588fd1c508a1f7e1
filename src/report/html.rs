//! The report as one self-contained HTML file: inline CSS and inline SVG charts, no script,
//! no external resource, so it can be mailed, archived and opened offline.
//!
//! Every text from the trail is HTML-escaped (a refused token request's claimed partner id
//! is chosen by whoever sent it).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{DayCount, PartnerUsage, Report};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}\
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}.muted{color:#777}\
svg text{font:11px sans-serif;fill:#333}";
const ALLOWED: &str = "#3b7d3b";
const DENIED: &str = "#c0392b";
/// Days drawn at most in the per-day chart (the latest ones).
const MAX_DAYS: usize = 366;
/// Reasons drawn at most in the denials chart (the most frequent ones).
const MAX_REASONS: usize = 15;

pub fn page(r: &Report) -> String {
    let mut o = String::new();
    let when = |t: Option<jiff::Timestamp>| t.map_or("-".into(), |t| t.to_string());
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>gatehouse report</title><style>{STYLE}</style></head><body>\n\
         <h1>gatehouse access report</h1>\n<p>From {} to {} (UTC). {} record(s) in {} file(s). \
         Generated {}.</p>\n",
        esc(&when(r.since)),
        esc(&r.until.map_or("now".into(), |t| t.to_string())),
        r.records,
        r.files,
        esc(&r.generated_at.to_string())
    );
    partners_table(&mut o, r);
    let _ = writeln!(o, "<h2>Data requests per day</h2>");
    o.push_str(&per_day_chart(&r.per_day));
    let _ = writeln!(o, "<h2>Denials by reason</h2>");
    o.push_str(&reasons_chart(&r.denials_by_reason()));
    details(&mut o, r);
    let u = &r.unattributed;
    let _ = writeln!(
        o,
        "<h2>Unattributed refusals</h2><p>No valid token or an unknown partner: {} refusal(s) \
         from {} IP(s). {}</p>",
        u.refusals,
        u.source_ips,
        esc(&counts(&u.by_reason))
    );
    o.push_str("</body></html>\n");
    o
}

fn partners_table(o: &mut String, r: &Report) {
    o.push_str(
        "<h2>Partners</h2><table><tr><th class=\"l\">partner</th><th>requests</th>\
         <th>allowed</th><th>denied</th><th>bytes in</th><th>bytes out</th><th>objects</th>\
         <th>source IPs</th><th>sessions</th><th>tokens issued</th><th>tokens refused</th>\
         <th class=\"l\">first access</th><th class=\"l\">last access</th></tr>\n",
    );
    let when = |t: Option<jiff::Timestamp>| t.map_or("-".into(), |t| t.to_string());
    for (id, p) in &r.partners {
        let mark = if p.configured {
            ""
        } else {
            " <span class=\"muted\">(not configured)</span>"
        };
        let _ = writeln!(
            o,
            "<tr><td class=\"l\">{}{mark}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(id),
            p.requests,
            p.allowed,
            p.denied,
            p.bytes_in,
            p.bytes_out,
            p.objects_touched,
            p.source_ips.len(),
            p.sessions,
            p.tokens_issued,
            p.tokens_refused,
            esc(&when(p.first_access)),
            esc(&when(p.last_access))
        );
    }
    o.push_str("</table>\n");
}

fn details(o: &mut String, r: &Report) {
    o.push_str(
        "<h2>Per partner</h2><table><tr><th class=\"l\">partner</th>\
         <th class=\"l\">denials by reason</th><th class=\"l\">token refusals</th>\
         <th class=\"l\">DLP findings (entity/action)</th><th class=\"l\">DLP outcomes</th>\
         <th class=\"l\">alerts</th><th class=\"l\">source IPs</th></tr>\n",
    );
    for (id, p) in &r.partners {
        let ips: Vec<&str> = p.source_ips.iter().map(String::as_str).collect();
        let _ = writeln!(
            o,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td></tr>",
            esc(id),
            esc(&counts(&p.denials_by_reason)),
            esc(&counts(&p.token_refusals_by_reason)),
            esc(&counts(&findings(p))),
            esc(&counts(&p.dlp_outcomes)),
            esc(&counts(&p.alerts)),
            esc(&ips.join(", "))
        );
    }
    o.push_str("</table>\n");
}

fn findings(p: &PartnerUsage) -> BTreeMap<String, u64> {
    p.dlp_findings
        .iter()
        .flat_map(|(e, actions)| actions.iter().map(move |(a, n)| (format!("{e}/{a}"), *n)))
        .collect()
}

/// Stacked bars (allowed below, denied on top), one per day from the first to the last day
/// with activity, empty days included.
fn per_day_chart(per_day: &BTreeMap<String, DayCount>) -> String {
    let days = fill_days(per_day);
    if days.is_empty() {
        return "<p class=\"muted\">No data requests in the period.</p>\n".into();
    }
    let (w, h, left, bottom) = (760.0_f64, 220.0_f64, 48.0_f64, 30.0_f64);
    let max = days
        .iter()
        .map(|(_, c)| c.allowed + c.denied)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_h = h - bottom - 10.0;
    let step = (w - left - 10.0) / days.len() as f64;
    let bar = (step * 0.8).max(1.0);
    let mut s = format!(
        "<svg width=\"{w}\" height=\"{h}\" role=\"img\" \
         aria-label=\"data requests per day\">\n\
         <text x=\"4\" y=\"14\">{}</text><text x=\"4\" y=\"{}\">0</text>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\n",
        max as u64,
        h - bottom,
        h - bottom,
        w - 10.0,
        h - bottom
    );
    let label_every = days.len().div_ceil(10);
    for (i, (day, c)) in days.iter().enumerate() {
        let x = left + i as f64 * step;
        let ha = c.allowed as f64 / max * plot_h;
        let hd = c.denied as f64 / max * plot_h;
        let base = h - bottom;
        let _ = writeln!(
            s,
            "<g><title>{day}: {} allowed, {} denied</title>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{ha:.1}\" fill=\"{ALLOWED}\"/>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{hd:.1}\" fill=\"{DENIED}\"/></g>",
            c.allowed,
            c.denied,
            base - ha,
            base - ha - hd
        );
        if i % label_every == 0 {
            let _ = writeln!(
                s,
                "<text x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                h - bottom + 14.0,
                &day[5..]
            );
        }
    }
    let _ = write!(
        s,
        "<rect x=\"{}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{ALLOWED}\"/>\
         <text x=\"{}\" y=\"13\">allowed</text>\
         <rect x=\"{}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{DENIED}\"/>\
         <text x=\"{}\" y=\"13\">denied</text>\n</svg>\n",
        w - 160.0,
        w - 146.0,
        w - 90.0,
        w - 76.0
    );
    s
}

/// Every day from the first to the last key of `per_day` (the latest [`MAX_DAYS`]).
fn fill_days(per_day: &BTreeMap<String, DayCount>) -> Vec<(String, DayCount)> {
    let parse = |d: &String| d.parse::<jiff::civil::Date>().ok();
    let (Some(first), Some(last)) = (
        per_day.keys().next().and_then(parse),
        per_day.keys().next_back().and_then(parse),
    ) else {
        return Vec::new();
    };
    let mut days = Vec::new();
    let mut d = last;
    while d >= first && days.len() < MAX_DAYS {
        let key = d.to_string();
        days.push((key.clone(), per_day.get(&key).copied().unwrap_or_default()));
        match d.yesterday() {
            Ok(y) => d = y,
            Err(_) => break,
        }
    }
    days.reverse();
    days
}

/// Horizontal bars, most frequent reason first.
fn reasons_chart(reasons: &BTreeMap<String, u64>) -> String {
    let mut rows: Vec<(&String, u64)> = reasons.iter().map(|(r, n)| (r, *n)).collect();
    if rows.is_empty() {
        return "<p class=\"muted\">No denials in the period.</p>\n".into();
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    rows.truncate(MAX_REASONS);
    let (w, row_h, label_w) = (760.0_f64, 20.0_f64, 220.0_f64);
    let h = rows.len() as f64 * row_h + 10.0;
    let max = rows[0].1.max(1) as f64;
    let mut s = format!(
        "<svg width=\"{w}\" height=\"{h}\" role=\"img\" \
         aria-label=\"denials by reason\">\n"
    );
    for (i, (reason, n)) in rows.iter().enumerate() {
        let y = 5.0 + i as f64 * row_h;
        let bw = (*n as f64 / max * (w - label_w - 60.0)).max(1.0);
        let _ = writeln!(
            s,
            "<text x=\"4\" y=\"{:.1}\">{}</text>\
             <rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{DENIED}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{n}</text>",
            y + 13.0,
            esc(reason),
            row_h - 6.0,
            label_w + bw + 4.0,
            y + 13.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `s` escaped for HTML text and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}
