//! `gatehouse audit search` and `gatehouse audit tail`: filtering and printing records.
//!
//! Takes segment files and a [`Filter`]; gives the matching records as a table (one row per
//! record, fixed columns) or as the JSON lines themselves. Trail-internal records
//! (`checkpoint`, `trail_opened`) are left out unless `--kind` asks for them. Aggregated
//! refusals match a `--reason` found among their counted reasons. Times are RFC 3339, a UTC
//! date (`2026-01-31`), or a span back from now (`24h`, `7d`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Kinds that are about the trail itself, not about partners.
const INTERNAL_KINDS: [&str; 2] = ["checkpoint", "trail_opened"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub partner: Option<String>,
    pub session: Option<String>,
    pub share: Option<String>,
    pub decision: Option<String>,
    pub reason: Option<String>,
    pub kind: Option<String>,
    pub since: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
}

impl Filter {
    pub fn matches(&self, v: &Value) -> bool {
        let kind = v["kind"].as_str().unwrap_or("");
        let field = |name: &str, want: &Option<String>| {
            want.as_deref().is_none_or(|w| v[name].as_str() == Some(w))
        };
        let kind_ok = match &self.kind {
            Some(k) => kind == k,
            None => !INTERNAL_KINDS.contains(&kind),
        };
        let reason_ok = self
            .reason
            .as_deref()
            .is_none_or(|r| v["reason"].as_str() == Some(r) || v["reasons"].get(r).is_some());
        let time = v["time"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let time_ok = match (self.since, self.until, time) {
            (None, None, _) => true,
            (_, _, None) => false,
            (since, until, Some(t)) => since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u),
        };
        kind_ok
            && reason_ok
            && time_ok
            && field("partner", &self.partner)
            && field("session_id", &self.session)
            && field("share", &self.share)
            && field("decision", &self.decision)
    }
}

/// Parses `--since`/`--until`: RFC 3339, a UTC date, or a span back from `now`.
pub fn parse_time(s: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string());
    }
    let span = humantime::parse_duration(s).map_err(|_| {
        format!("invalid time {s:?}: write RFC 3339 (2026-01-31T12:00:00Z), a date (2026-01-31) or a span back from now (24h, 7d)")
    })?;
    let span = jiff::SignedDuration::try_from(span).map_err(|e| e.to_string())?;
    now.checked_sub(span).map_err(|e| e.to_string())
}

/// Writes the records of `files` that match, in `format`. Gives the number written.
pub fn search(
    files: &[PathBuf],
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<u64> {
    if format == Format::Table {
        writeln!(out, "{}", header())?;
    }
    let mut n = 0;
    for_each(files, filter, progress, &mut |line, v| {
        n += 1;
        print_record(out, format, line, v)
    })?;
    Ok(n)
}

/// Calls `f` with each record of `files` (in order) that `filter` matches: its exact line
/// (without the newline) and its native view ([`super::ocsf::native`]). Lines that are not JSON are skipped;
/// `progress` gets the bytes read. Stops at the first error of reading or of `f`.
pub fn for_each(
    files: &[PathBuf],
    filter: &Filter,
    progress: &mut dyn FnMut(u64),
    f: &mut dyn FnMut(&[u8], &Value) -> std::io::Result<()>,
) -> std::io::Result<()> {
    for path in files {
        let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            progress(buf.len() as u64);
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let v = super::ocsf::native(&v);
            if filter.matches(&v) {
                f(line, &v)?;
            }
        }
    }
    Ok(())
}

pub fn print_record(
    out: &mut dyn Write,
    format: Format,
    line: &[u8],
    v: &Value,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            out.write_all(line)?;
            out.write_all(b"\n")
        }
        Format::Table => writeln!(out, "{}", row(v)),
    }
}

pub fn header() -> String {
    format!(
        "{:<24} {:<19} {:<5} {:>3} {:<24} {:<12} {:<15} {:<6} {}",
        "TIME", "KIND", "DEC", "ST", "REASON", "PARTNER", "CLIENT_IP", "METHOD", "PATH / DETAIL"
    )
}

/// One table row. Values are cut to their column; the last column is the path, or what an
/// internal record says.
pub fn row(v: &Value) -> String {
    let s = |name: &str| v[name].as_str().unwrap_or("-").to_string();
    let kind = s("kind");
    let (reason, detail) = match kind.as_str() {
        "refusals_aggregated" => (
            format!("{} refusals", v["count"].as_u64().unwrap_or(0)),
            v["reasons"].to_string(),
        ),
        "checkpoint" => (
            s_of(&v["checkpoint"]["reason"]),
            format!(
                "records={} key_id={}",
                v["checkpoint"]["records"],
                s_of(&v["checkpoint"]["key_id"])
            ),
        ),
        "trail_opened" => (s("previous_end"), format!("key_id={}", s("key_id"))),
        _ => (s("reason"), s("path")),
    };
    let status = v["status"].as_u64().map_or("-".into(), |n| n.to_string());
    let time = s("time");
    format!(
        "{:<24} {:<19} {:<5} {:>3} {:<24} {:<12} {:<15} {:<6} {}",
        cut(&time, 24),
        cut(&kind, 19),
        cut(&s("decision"), 5),
        status,
        cut(&reason, 24),
        cut(&s("partner"), 12),
        cut(&s("client_ip"), 15),
        cut(&s("method"), 6),
        cut(&detail, 120)
    )
}

fn s_of(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The file `tail` reads: `path` itself, or the newest segment file in a directory.
pub fn tail_file(path: &Path) -> std::io::Result<Option<PathBuf>> {
    if !path.is_dir() {
        return Ok(Some(path.to_path_buf()));
    }
    Ok(super::chain::segments(path)?.pop().map(|n| path.join(n)))
}

/// The last `n` lines of `file` (complete lines only), and the offset after them.
pub fn last_lines(file: &Path, n: usize) -> std::io::Result<(Vec<Vec<u8>>, u64)> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(file)?);
    let mut lines = std::collections::VecDeque::with_capacity(n + 1);
    let (mut offset, mut buf) = (0u64, Vec::new());
    loop {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf)?;
        if read == 0 || !buf.ends_with(b"\n") {
            break;
        }
        offset += read as u64;
        lines.push_back(buf[..buf.len() - 1].to_vec());
        if lines.len() > n {
            lines.pop_front();
        }
    }
    Ok((lines.into(), offset))
}

/// Complete lines of `file` from `offset` on, and the offset after them.
pub fn lines_from(file: &Path, offset: u64) -> std::io::Result<(Vec<Vec<u8>>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let lines = buf[..end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Ok((lines, offset + end as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn filters_on_fields_time_and_aggregated_reasons() {
        let a = rec(
            r#"{"time":"2026-01-02T10:00:00Z","kind":"request","partner":"acme","session_id":"s1","share":"exports","decision":"allow","reason":"ok"}"#,
        );
        let agg = rec(
            r#"{"time":"2026-01-02T11:00:00Z","kind":"refusals_aggregated","client_ip":"10.0.0.1","decision":"deny","count":5,"reasons":{"token_missing":5}}"#,
        );
        let cp = rec(r#"{"time":"2026-01-02T11:00:00Z","kind":"checkpoint"}"#);
        let f = |f: Filter| [&a, &agg, &cp].iter().filter(|v| f.matches(v)).count();
        assert_eq!(f(Filter::default()), 2, "checkpoints are left out");
        let only = |kind: &str| Filter {
            kind: Some(kind.into()),
            ..Filter::default()
        };
        assert_eq!(f(only("checkpoint")), 1);
        let by = |partner: &str| Filter {
            partner: Some(partner.into()),
            ..Filter::default()
        };
        assert_eq!(f(by("acme")), 1);
        assert_eq!(f(by("other")), 0);
        let reason = Filter {
            reason: Some("token_missing".into()),
            ..Filter::default()
        };
        assert!(reason.matches(&agg) && !reason.matches(&a));
        let t = |s: &str| parse_time(s, jiff::Timestamp::now()).unwrap();
        let window = Filter {
            since: Some(t("2026-01-02T10:30:00Z")),
            until: Some(t("2026-01-03")),
            ..Filter::default()
        };
        assert!(!window.matches(&a) && window.matches(&agg));
        let deny = Filter {
            decision: Some("deny".into()),
            session: None,
            ..Filter::default()
        };
        assert!(deny.matches(&agg) && !deny.matches(&a));
    }

    #[test]
    fn times_are_absolute_dates_or_spans_back() {
        let now: jiff::Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            parse_time("24h", now).unwrap(),
            "2026-02-28T00:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        assert_eq!(
            parse_time("2026-01-31", now).unwrap(),
            "2026-01-31T00:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        assert!(parse_time("yesterday-ish", now).is_err());
    }

    #[test]
    fn table_rows_show_the_columns_and_never_panic_on_odd_records() {
        let r = row(&rec(
            r#"{"time":"2026-01-02T10:00:00Z","kind":"request","decision":"deny","status":404,"reason":"no_grant","partner":"acme","client_ip":"10.1.2.3","method":"GET","path":"/exports/x"}"#,
        ));
        assert!(
            r.contains("no_grant") && r.contains("/exports/x") && r.contains("404"),
            "{r}"
        );
        let odd = row(&rec(r#"{"kind":7}"#));
        assert!(odd.starts_with('-'), "{odd}");
    }

    #[test]
    fn tail_reads_complete_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("audit-2026-01-01.jsonl");
        std::fs::write(&f, b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":").unwrap();
        let (lines, offset) = last_lines(&f, 2).unwrap();
        assert_eq!(lines, [b"{\"a\":2}".to_vec(), b"{\"a\":3}".to_vec()]);
        assert_eq!(offset, 24);
        std::fs::write(&f, b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n").unwrap();
        let (lines, offset) = lines_from(&f, offset).unwrap();
        assert_eq!(lines, [b"{\"a\":4}".to_vec()]);
        assert_eq!(offset, 32);
        assert_eq!(tail_file(dir.path()).unwrap(), Some(f));
    }
}
