//! Live sessions: which access tokens are out there, for the SOC and for operators.
//!
//! Takes every finished event ([`Sessions::observe`]): an issued token starts a session, a
//! data request under it updates its last use and traffic. Gives the list of sessions that
//! are neither expired nor revoked nor of a partner the configuration no longer lets in
//! (`GET /sessions` on the admin listener, `gatehouse sessions`). In memory, bounded, kept
//! across reloads; after a restart it fills again as tokens are used (tokens themselves
//! stay valid: they are verified by signature, not looked up here).

use std::collections::HashMap;

use serde::Serialize;

use crate::audit::{Decision, Event, Kind};
use crate::revocation::Revocations;
use crate::state::PartnerGate;

/// How often the end of sessions is looked for and recorded.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Most sessions tracked; beyond it the ones closest to expiry are forgotten first.
pub const MAX_TRACKED: usize = 100_000;

/// One session as the admin listener lists it. Holds no token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionInfo {
    pub session_id: String,
    pub partner: String,
    /// The partner key that signed the assertion (or the federation issuer's key id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Client IP at issuance.
    pub client_ip: String,
    pub started: jiff::Timestamp,
    pub expires: jiff::Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<jiff::Timestamp>,
    /// Last client IP seen using it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ip: Option<String>,
    pub requests: u64,
    pub denied: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Default)]
pub struct Sessions {
    map: parking_lot::Mutex<HashMap<String, SessionInfo>>,
}

impl Sessions {
    /// Starts or updates the session an event belongs to.
    pub fn observe(&self, ev: &Event) {
        let Some(sid) = ev.session_id.as_deref() else {
            return;
        };
        match ev.kind {
            Kind::Token if ev.decision == Decision::Allow => {
                let (Some(partner), Some(lifetime)) = (ev.partner.as_deref(), ev.expires_in) else {
                    return;
                };
                let expires = ev
                    .time
                    .checked_add(jiff::SignedDuration::from_secs(
                        i64::try_from(lifetime).unwrap_or(i64::MAX),
                    ))
                    .unwrap_or(jiff::Timestamp::MAX);
                let info = SessionInfo {
                    session_id: sid.to_string(),
                    partner: partner.to_string(),
                    key_id: ev.key_id.clone(),
                    client_ip: ev.client_ip.clone(),
                    started: ev.time,
                    expires,
                    scopes: ev.scopes.clone(),
                    last_seen: None,
                    last_ip: None,
                    requests: 0,
                    denied: 0,
                    bytes_in: 0,
                    bytes_out: 0,
                };
                let mut map = self.map.lock();
                if map.len() >= MAX_TRACKED {
                    prune(&mut map, ev.time);
                }
                map.insert(sid.to_string(), info);
            }
            Kind::Request => {
                let mut map = self.map.lock();
                if let Some(s) = map.get_mut(sid) {
                    s.last_seen = Some(ev.time);
                    if s.last_ip.as_deref() != Some(ev.client_ip.as_str()) {
                        s.last_ip = Some(ev.client_ip.clone());
                    }
                    s.requests += 1;
                    s.denied += u64::from(ev.decision == Decision::Deny);
                    s.bytes_in += ev.bytes_in;
                    s.bytes_out += ev.bytes_out;
                }
            }
            _ => {}
        }
    }

    /// Sessions still live at `now`, newest first.
    pub fn live(
        &self,
        now: jiff::Timestamp,
        revocations: &Revocations,
        gate: &PartnerGate,
    ) -> Vec<SessionInfo> {
        let map = self.map.lock();
        let mut out: Vec<SessionInfo> = map
            .iter()
            .filter(|(sid, s)| ended(sid, s, now, revocations, gate).is_none())
            .map(|(_, s)| s.clone())
            .collect();
        out.sort_by(|a, b| {
            b.started
                .cmp(&a.started)
                .then(a.session_id.cmp(&b.session_id))
        });
        out
    }

    /// How many sessions [`Sessions::live`] would list, without copying them.
    pub fn live_count(
        &self,
        now: jiff::Timestamp,
        revocations: &Revocations,
        gate: &PartnerGate,
    ) -> usize {
        let map = self.map.lock();
        map.iter()
            .filter(|(sid, s)| ended(sid, s, now, revocations, gate).is_none())
            .count()
    }

    /// Forgets the sessions that have ended at `now` and gives them with why they ended
    /// (`session_expired`, `session_revoked`, `partner_suspended`), oldest first.
    pub fn sweep(
        &self,
        now: jiff::Timestamp,
        revocations: &Revocations,
        gate: &PartnerGate,
    ) -> Vec<(SessionInfo, &'static str)> {
        let mut map = self.map.lock();
        let mut out = Vec::new();
        map.retain(|sid, s| match ended(sid, s, now, revocations, gate) {
            Some(reason) => {
                out.push((s.clone(), reason));
                false
            }
            None => true,
        });
        out.sort_by_key(|(s, _)| s.started);
        out
    }
}

/// Why a session has ended at `now`, if it has.
fn ended(
    sid: &str,
    s: &SessionInfo,
    now: jiff::Timestamp,
    revocations: &Revocations,
    gate: &PartnerGate,
) -> Option<&'static str> {
    if revocations.is_revoked(&s.partner, sid, s.started) {
        Some("session_revoked")
    } else if !gate.is_active(&s.partner) {
        Some("partner_suspended")
    } else if s.expires <= now {
        Some("session_expired")
    } else {
        None
    }
}

#[cfg(test)]
impl Sessions {
    /// Sessions tracked (live or not yet pruned).
    fn len(&self) -> usize {
        self.map.lock().len()
    }
}

/// The audit record of a session's end: partner, session, the client IP last seen, totals
/// (bytes in and out), and how long it lasted (`duration_ms`).
pub fn end_event(s: &SessionInfo, reason: &str, now: jiff::Timestamp) -> Event {
    let end = if reason == "session_expired" {
        s.expires.min(now)
    } else {
        now
    };
    Event {
        time: now,
        session_id: Some(s.session_id.clone()),
        partner: Some(s.partner.clone()),
        client_ip: s.last_ip.clone().unwrap_or_else(|| s.client_ip.clone()),
        method: "SESSION".into(),
        path: format!("/sessions/{}", s.session_id),
        decision: Decision::Allow,
        reason: reason.into(),
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
        duration_ms: (end.as_millisecond() - s.started.as_millisecond()).max(0) as f64,
        key_id: s.key_id.clone(),
        scopes: s.scopes.clone(),
        ..Event::blank(Kind::Session)
    }
}

/// Every `every`, records the end of each session that has ended, until `shutdown`.
pub async fn sweeper(
    live: std::sync::Arc<crate::reload::Live>,
    every: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {
                let state = live.state();
                let now = jiff::Timestamp::now();
                for (s, reason) in state.observers.sessions.sweep(now, &state.revocations, &state.gate) {
                    let ev = end_event(&s, reason, now);
                    state.audit.record(&ev);
                    state.observers.metrics.observe(&ev);
                }
            }
        }
    }
}

/// Drops expired sessions; if that frees nothing, the tenth closest to expiry.
fn prune(map: &mut HashMap<String, SessionInfo>, now: jiff::Timestamp) {
    map.retain(|_, s| s.expires > now);
    if map.len() >= MAX_TRACKED {
        let mut by_expiry: Vec<(jiff::Timestamp, String)> =
            map.iter().map(|(k, s)| (s.expires, k.clone())).collect();
        by_expiry.sort();
        for (_, k) in by_expiry.into_iter().take(MAX_TRACKED / 10) {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(sid: &str, partner: &str, at: i64, lifetime: u64) -> Event {
        Event {
            time: jiff::Timestamp::from_second(at).unwrap(),
            request_id: "r".into(),
            session_id: Some(sid.into()),
            partner: Some(partner.into()),
            client_ip: "192.0.2.1".into(),
            method: "POST".into(),
            path: "/v1/token".into(),
            status: 200,
            decision: Decision::Allow,
            reason: "ok".into(),
            duration_ms: 1.0,
            key_id: Some("k1".into()),
            expires_in: Some(lifetime),
            ..Event::blank(Kind::Token)
        }
    }

    fn request(sid: &str, at: i64, decision: Decision, out: u64) -> Event {
        Event {
            kind: Kind::Request,
            time: jiff::Timestamp::from_second(at).unwrap(),
            decision,
            bytes_out: out,
            client_ip: "198.51.100.7".into(),
            expires_in: None,
            ..token(sid, "acme", at, 0)
        }
    }

    #[test]
    fn tokens_start_sessions_and_requests_update_them() {
        let dir = tempfile::tempdir().unwrap();
        let rev = Revocations::open(&dir.path().join("r.json")).unwrap();
        let gate = PartnerGate::default();
        let s = Sessions::default();
        s.observe(&token("s1", "acme", 1000, 900));
        s.observe(&token("s2", "acme", 1010, 900));
        s.observe(&request("s1", 1020, Decision::Allow, 5));
        s.observe(&request("s1", 1030, Decision::Deny, 0));
        s.observe(&request("unknown", 1030, Decision::Allow, 7));
        let live = s.live(jiff::Timestamp::from_second(1100).unwrap(), &rev, &gate);
        assert_eq!(
            live.iter()
                .map(|l| l.session_id.as_str())
                .collect::<Vec<_>>(),
            ["s2", "s1"]
        );
        let s1 = &live[1];
        assert_eq!((s1.requests, s1.denied, s1.bytes_out), (2, 1, 5));
        assert_eq!(s1.last_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(s1.expires.as_second(), 1900);
    }

    #[test]
    fn expired_revoked_and_suspended_sessions_are_not_live() {
        let dir = tempfile::tempdir().unwrap();
        let rev = Revocations::open(&dir.path().join("r.json")).unwrap();
        let gate = PartnerGate::default();
        let s = Sessions::default();
        s.observe(&token("short", "acme", 1000, 60));
        s.observe(&token("revoked", "acme", 1000, 900));
        s.observe(&token("suspended", "other", 1000, 900));
        s.observe(&token("ok", "acme", 1000, 900));
        let now = jiff::Timestamp::from_second(1100).unwrap();
        rev.revoke_session("revoked", now).unwrap();
        gate.set(["acme".to_string()].into_iter().collect());
        let live = s.live(now, &rev, &gate);
        assert_eq!(s.live_count(now, &rev, &gate), live.len());
        assert_eq!(
            live.iter()
                .map(|l| l.session_id.as_str())
                .collect::<Vec<_>>(),
            ["ok"]
        );
        assert_eq!(s.len(), 4, "listing forgets nothing");
        let mut ended: Vec<(String, &str)> = s
            .sweep(now, &rev, &gate)
            .into_iter()
            .map(|(i, r)| (i.session_id, r))
            .collect();
        ended.sort();
        assert_eq!(
            ended,
            [
                ("revoked".to_string(), "session_revoked"),
                ("short".to_string(), "session_expired"),
                ("suspended".to_string(), "partner_suspended"),
            ]
        );
        assert_eq!(s.len(), 1, "ended sessions are forgotten once swept");
        assert!(s.sweep(now, &rev, &gate).is_empty());
        let ok = s.live(now, &rev, &gate).remove(0);
        let ev = end_event(
            &ok,
            "session_expired",
            jiff::Timestamp::from_second(5000).unwrap(),
        );
        assert_eq!(ev.kind, Kind::Session);
        assert_eq!(
            ev.duration_ms, 900_000.0,
            "an expired session lasted until its expiry"
        );
    }

    #[test]
    fn refused_tokens_start_nothing() {
        let s = Sessions::default();
        let mut ev = token("s1", "acme", 1000, 900);
        ev.decision = Decision::Deny;
        s.observe(&ev);
        assert_eq!(s.len(), 0);
    }
}
