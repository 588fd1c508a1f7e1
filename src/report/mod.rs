//! `gatehouse report`: per-partner activity over a period of the audit trail.
//!
//! Takes audit segment files (read through [`crate::audit::search`]), a time window and,
//! when available, the configuration (so partners with no activity show up with zeros);
//! gives a [`Report`]: per partner the data requests (allowed, denied), bytes in and out,
//! distinct objects read or written, denials by reason, token events, DLP findings by entity
//! and action, distinct source IPs, sessions and the first and last access, plus the
//! refusals no partner can be held to (no valid token, unknown `client_id`) and the data
//! requests per day. Printed as a table, JSON, or one self-contained HTML file
//! (`html`). Never holds object contents, tokens or matched values: the trail has none.
//! Fails (exit 2) when a trail file cannot be read, 64 when the configuration does not load.

mod html;
mod text;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use crate::audit::search::{self, Filter};

/// Exit code for a read or write error.
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Html,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The configuration: its audit directory is the default PATH, and its partners are
    /// listed even without activity. Read when given or when no PATH is given
    /// (default config/gatehouse.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// From this time on: RFC 3339, a date (UTC), or a span back from now (24h, 30d).
    #[arg(long, default_value = "30d")]
    pub since: String,
    /// Before this time (same forms as --since); default: now.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Write the report to this file (mode 0600) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Audit files or directories; default: the configuration's audit directory.
    pub paths: Vec<PathBuf>,
}

/// What one partner did in the period.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PartnerUsage {
    /// In the configuration given (false: a partner seen only in the trail, e.g. removed).
    pub configured: bool,
    /// Data requests (`kind = "request"`).
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Distinct `share/key` of allowed requests that named an object.
    pub objects_touched: u64,
    pub denials_by_reason: BTreeMap<String, u64>,
    pub tokens_issued: u64,
    pub tokens_refused: u64,
    pub token_refusals_by_reason: BTreeMap<String, u64>,
    /// Findings summed over requests: entity -> action -> count.
    pub dlp_findings: BTreeMap<String, BTreeMap<String, u64>>,
    /// Requests by DLP outcome (`transformed`, `blocked`, ...).
    pub dlp_outcomes: BTreeMap<String, u64>,
    pub source_ips: BTreeSet<String>,
    /// Distinct session ids in token and request records.
    pub sessions: u64,
    /// Alerts raised about this partner, by rule.
    pub alerts: BTreeMap<String, u64>,
    pub first_access: Option<jiff::Timestamp>,
    pub last_access: Option<jiff::Timestamp>,
    #[serde(skip)]
    objects: HashSet<String>,
    #[serde(skip)]
    session_ids: HashSet<String>,
}

/// Refusals not attributable to a configured partner: no valid token, an unknown
/// `client_id`, and the aggregated records of floods.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Unattributed {
    pub refusals: u64,
    pub by_reason: BTreeMap<String, u64>,
    pub source_ips: u64,
    #[serde(skip)]
    ips: HashSet<String>,
}

/// Allowed and denied data requests of one UTC day.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct DayCount {
    pub allowed: u64,
    pub denied: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_at: jiff::Timestamp,
    pub since: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
    pub files: usize,
    /// Records in the window that were counted.
    pub records: u64,
    pub partners: BTreeMap<String, PartnerUsage>,
    pub unattributed: Unattributed,
    /// Data requests per UTC day (`YYYY-MM-DD`), every day of the span with activity.
    pub per_day: BTreeMap<String, DayCount>,
}

impl Report {
    /// An empty report; `configured` partners are listed even if they stay silent.
    pub fn new<'a>(
        generated_at: jiff::Timestamp,
        since: Option<jiff::Timestamp>,
        until: Option<jiff::Timestamp>,
        configured: impl IntoIterator<Item = &'a str>,
    ) -> Report {
        let partners = configured
            .into_iter()
            .map(|id| {
                let usage = PartnerUsage {
                    configured: true,
                    ..PartnerUsage::default()
                };
                (id.to_string(), usage)
            })
            .collect();
        Report {
            generated_at,
            since,
            until,
            files: 0,
            records: 0,
            partners,
            unattributed: Unattributed::default(),
            per_day: BTreeMap::new(),
        }
    }

    /// Counts one record of the trail (already filtered to the window).
    pub fn add(&mut self, v: &Value) {
        let s = |name: &str| v[name].as_str();
        let kind = s("kind").unwrap_or("");
        let deny = s("decision") == Some("deny");
        let reason = s("reason").unwrap_or("-").to_string();
        let time = s("time").and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if kind == "request"
            && let Some(t) = time
        {
            let day = self.per_day.entry(day_of(t)).or_default();
            *if deny {
                &mut day.denied
            } else {
                &mut day.allowed
            } += 1;
        }
        let partner = s("partner").filter(|_| !(kind == "token" && reason == "unknown_partner"));
        match (kind, partner) {
            ("request_start" | "admin" | "checkpoint" | "trail_opened", _) => return,
            ("refusals_aggregated", _) => {
                let u = &mut self.unattributed;
                if let Some(reasons) = v["reasons"].as_object() {
                    for (r, n) in reasons {
                        let n = n.as_u64().unwrap_or(0);
                        *u.by_reason.entry(r.clone()).or_default() += n;
                        u.refusals += n;
                    }
                }
                u.note_ip(s("client_ip"));
            }
            ("request" | "token", None) => {
                let u = &mut self.unattributed;
                u.refusals += 1;
                *u.by_reason.entry(reason).or_default() += 1;
                u.note_ip(s("client_ip"));
            }
            ("alert", Some(p)) => {
                *self.partner(p).alerts.entry(reason).or_default() += 1;
            }
            ("request", Some(p)) => self.partner(p).request(v, deny, reason, time),
            ("token", Some(p)) => self.partner(p).token(v, deny, reason, time),
            _ => return,
        }
        self.records += 1;
    }

    fn partner(&mut self, id: &str) -> &mut PartnerUsage {
        self.partners.entry(id.to_string()).or_default()
    }

    /// Turns the sets into counts; call once after the last [`Report::add`].
    pub fn finish(&mut self) {
        for p in self.partners.values_mut() {
            p.objects_touched = p.objects.len() as u64;
            p.sessions = p.session_ids.len() as u64;
        }
        self.unattributed.source_ips = self.unattributed.ips.len() as u64;
    }

    /// Data-request denials by reason over all partners and the unattributed refusals.
    pub fn denials_by_reason(&self) -> BTreeMap<String, u64> {
        let mut all = self.unattributed.by_reason.clone();
        for p in self.partners.values() {
            for (r, n) in &p.denials_by_reason {
                *all.entry(r.clone()).or_default() += n;
            }
        }
        all
    }
}

impl PartnerUsage {
    fn request(&mut self, v: &Value, deny: bool, reason: String, time: Option<jiff::Timestamp>) {
        self.requests += 1;
        if deny {
            self.denied += 1;
            *self.denials_by_reason.entry(reason).or_default() += 1;
        } else {
            self.allowed += 1;
            if let (Some(share), Some(key)) = (v["share"].as_str(), v["key"].as_str()) {
                self.objects.insert(format!("{share}/{key}"));
            }
        }
        self.bytes_in += v["bytes_in"].as_u64().unwrap_or(0);
        self.bytes_out += v["bytes_out"].as_u64().unwrap_or(0);
        if let Some(outcome) = v["dlp"]["outcome"].as_str() {
            *self.dlp_outcomes.entry(outcome.to_string()).or_default() += 1;
        }
        for f in v["dlp"]["findings"].as_array().into_iter().flatten() {
            let (Some(entity), Some(action)) = (f["entity"].as_str(), f["action"].as_str()) else {
                continue;
            };
            *self
                .dlp_findings
                .entry(entity.to_string())
                .or_default()
                .entry(action.to_string())
                .or_default() += f["count"].as_u64().unwrap_or(0);
        }
        self.seen(v, time);
    }

    fn token(&mut self, v: &Value, deny: bool, reason: String, time: Option<jiff::Timestamp>) {
        if deny {
            self.tokens_refused += 1;
            *self.token_refusals_by_reason.entry(reason).or_default() += 1;
        } else {
            self.tokens_issued += 1;
        }
        self.seen(v, time);
    }

    fn seen(&mut self, v: &Value, time: Option<jiff::Timestamp>) {
        if let Some(ip) = v["client_ip"].as_str() {
            self.source_ips.insert(ip.to_string());
        }
        if let Some(sid) = v["session_id"].as_str() {
            self.session_ids.insert(sid.to_string());
        }
        if let Some(t) = time {
            self.first_access = Some(self.first_access.map_or(t, |f| f.min(t)));
            self.last_access = Some(self.last_access.map_or(t, |l| l.max(t)));
        }
    }
}

impl Unattributed {
    fn note_ip(&mut self, ip: Option<&str>) {
        if let Some(ip) = ip {
            self.ips.insert(ip.to_string());
        }
    }
}

/// `YYYY-MM-DD` of `t` in UTC.
pub fn day_of(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// Builds the report of `files` for the records `filter` lets through.
pub fn build(
    files: &[PathBuf],
    filter: &Filter,
    mut report: Report,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<Report> {
    report.files = files.len();
    search::for_each(files, filter, progress, &mut |_, v| {
        report.add(v);
        Ok(())
    })?;
    report.finish();
    Ok(report)
}

/// `gatehouse report`.
pub fn run(a: &ReportArgs) -> ExitCode {
    let now = jiff::Timestamp::now();
    let config = if a.config.is_some() || a.paths.is_empty() {
        let path = a
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("config/gatehouse.toml"));
        match crate::config::load(&path) {
            Ok(c) => Some(c),
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("the configuration does not load; run gatehouse check");
                return ExitCode::from(crate::cli::EXIT_BAD_CONFIG);
            }
        }
    } else {
        None
    };
    match report_cmd(a, config.as_ref(), now) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn report_cmd(
    a: &ReportArgs,
    config: Option<&crate::config::Config>,
    now: jiff::Timestamp,
) -> Result<(), String> {
    let since = search::parse_time(&a.since, now)?;
    let until = a
        .until
        .as_deref()
        .map(|t| search::parse_time(t, now))
        .transpose()?;
    let paths = match config {
        Some(c) if a.paths.is_empty() => vec![c.audit.dir.clone()],
        _ => a.paths.clone(),
    };
    let files = crate::audit::verify::files_of(&paths).map_err(|e| e.to_string())?;
    let filter = Filter {
        since: Some(since),
        until,
        ..Filter::default()
    };
    let configured = config
        .into_iter()
        .flat_map(|c| c.partners.keys().map(String::as_str));
    let empty = Report::new(now, Some(since), until, configured);
    let bar = crate::audit::cli::progress(&files);
    let report = build(&files, &filter, empty, &mut |n| bar.inc(n))
        .map_err(|e| format!("cannot read the trail: {e}"));
    bar.finish_and_clear();
    let report = report?;
    let body = match a.format {
        Format::Table => text::table(&report),
        Format::Json => serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n",
        Format::Html => html::page(&report),
    };
    match &a.out {
        Some(path) => crate::atomic_file::write(path, body.as_bytes(), crate::atomic_file::PRIVATE)
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match out.write_all(body.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
                _ => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
