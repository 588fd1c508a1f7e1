//! The OCSF record of a data request (`request`, `request_start`), written straight from the
//! [`Event`] instead of through the JSON tree [`super::encode_value`] builds: the same bytes
//! (members in the same sorted order; a test compares the two on events with and without
//! every optional field) for a fraction of the allocations. Two of these are written for every
//! object GET, so they are the trail's hot path; every other kind goes through the tree.

use serde::Serialize;
use serde_json::Value;

use super::OCSF_VERSION;
use crate::audit::{Decision, Event};

/// The record of `ev` as a `request` line, or with `start = Some(status)` as its
/// `request_start` line (allowed, reason `ok`, that status).
pub(in crate::audit) fn encode(ev: &Event, start: Option<u16>) -> Vec<u8> {
    let (kind, status, decision, reason) = match start {
        Some(status) => ("request_start", status, Decision::Allow, "ok"),
        None => ("request", ev.status, ev.decision, ev.reason.as_str()),
    };
    let (class_uid, class_name, category_uid, category_name) = super::class_of(kind);
    let (activity_id, activity_name) = super::request_activity(&ev.method);
    let blocked = ev
        .dlp
        .as_ref()
        .is_some_and(|d| matches!(d.outcome, "blocked" | "unscannable_blocked"));
    let (severity_id, severity) = match (blocked, decision) {
        (true, _) => (3, "Medium"),
        (false, Decision::Deny) => (2, "Low"),
        (false, Decision::Allow) => (1, "Informational"),
    };
    let (status_id, status_name) = match (start, decision) {
        (Some(_), _) => (0, "Unknown"),
        (None, Decision::Deny) => (2, "Failure"),
        (None, Decision::Allow) => (1, "Success"),
    };
    let share = ev.share.as_deref();
    let key = ev.key.as_deref();
    let operation = super::operation(&ev.method, share.is_some(), key.is_some());
    let resource = match (share, key) {
        (Some(s), Some(k)) => Some(Resource {
            group: Some(Name { name: s }),
            name: k,
            r#type: "object",
            uid: format!("{s}/{k}"),
        }),
        (Some(s), None) => Some(Resource {
            group: None,
            name: s,
            r#type: "share",
            uid: s.to_owned(),
        }),
        _ => None,
    };
    let ip_ok = ev.client_ip.parse::<std::net::IpAddr>().is_ok();
    let code = (status > 0).then_some(status);
    let rec = Record {
        activity_id,
        activity_name,
        actor: Actor {
            session: ev.session_id.as_deref().map(|uid| Uid { uid }),
            user: ev.partner.as_deref().map(|p| User {
                name: p,
                r#type: "Partner",
                type_id: 99,
                uid: p,
            }),
        },
        api: Api {
            operation,
            request: Uid {
                uid: &ev.request_id,
            },
            service: Name { name: "gatehouse" },
        },
        category_name,
        category_uid,
        class_name,
        class_uid,
        duration: ev
            .duration_ms
            .is_finite()
            .then(|| ev.duration_ms.round() as i64),
        http_request: HttpRequest {
            http_headers: ev.range.as_deref().map(|value| {
                [Header {
                    name: "Range",
                    value,
                }]
            }),
            http_method: &ev.method,
            url: Path { path: &ev.path },
            user_agent: ev.user_agent.as_deref(),
        },
        http_response: code.map(|code| Code { code }),
        metadata: Metadata {
            correlation_uid: ev.session_id.as_deref(),
            log_name: "gatehouse-audit",
            product: Product {
                name: "gatehouse",
                vendor_name: "gatehouse",
                version: env!("CARGO_PKG_VERSION"),
            },
            uid: &ev.request_id,
            version: OCSF_VERSION,
        },
        resources: resource.map(|r| [r]),
        severity,
        severity_id,
        src_endpoint: ip_ok.then_some(Ip { ip: &ev.client_ip }),
        status: status_name,
        status_code: code.map(|c| c.to_string()),
        status_detail: reason,
        status_id,
        time: ev.time.as_millisecond(),
        time_dt: &ev.time,
        timezone_offset: 0,
        type_name: format!("{class_name}: {activity_name}"),
        type_uid: class_uid * 100 + activity_id,
        unmapped: Unmapped {
            aborted: ev.aborted.then_some(true),
            amr: ev.amr.as_deref(),
            bytes_in: ev.bytes_in,
            bytes_out: ev.bytes_out,
            client_ip: (!ip_ok).then_some(ev.client_ip.as_str()),
            // Nested records keep the tree's sorted member order.
            data_key: ev.data_key.as_ref().and_then(sorted),
            decision,
            dlp: ev.dlp.as_ref().and_then(sorted),
            duration_ms: ev.duration_ms,
            expires_in: ev.expires_in,
            idp: ev.idp.as_deref(),
            key: if share.is_none() { key } else { None },
            key_id: ev.key_id.as_deref(),
            kind,
            requested_scopes: ev.requested_scopes.as_deref(),
            scopes: ev.scopes.as_deref(),
            status: (status == 0).then_some(0),
            tls: ev.tls.as_ref().and_then(sorted),
            upstream_ms: ev.upstream_ms,
        },
    };
    serde_json::to_vec(&rec).unwrap_or_else(|_| super::encode_value(Value::Null))
}

/// A nested record as the tree holds it (members sorted). The types nested here (strings,
/// numbers, lists of them) always serialise.
fn sorted(v: &impl Serialize) -> Option<Value> {
    serde_json::to_value(v).ok()
}

// Members in byte order, as a `serde_json::Map` (a B-tree) writes them.

#[derive(Serialize)]
struct Record<'a> {
    activity_id: u64,
    activity_name: &'static str,
    actor: Actor<'a>,
    api: Api<'a>,
    category_name: &'static str,
    category_uid: u64,
    class_name: &'static str,
    class_uid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<i64>,
    http_request: HttpRequest<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_response: Option<Code>,
    metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<[Resource<'a>; 1]>,
    severity: &'static str,
    severity_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_endpoint: Option<Ip<'a>>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<String>,
    status_detail: &'a str,
    status_id: u64,
    time: i64,
    time_dt: &'a jiff::Timestamp,
    timezone_offset: i64,
    type_name: String,
    type_uid: u64,
    unmapped: Unmapped<'a>,
}

#[derive(Serialize)]
struct Actor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Uid<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User<'a>>,
}

#[derive(Serialize)]
struct User<'a> {
    name: &'a str,
    r#type: &'static str,
    type_id: u64,
    uid: &'a str,
}

#[derive(Serialize)]
struct Uid<'a> {
    uid: &'a str,
}

#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Api<'a> {
    operation: &'a str,
    request: Uid<'a>,
    service: Name<'static>,
}

#[derive(Serialize)]
struct HttpRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    http_headers: Option<[Header<'a>; 1]>,
    http_method: &'a str,
    url: Path<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
}

#[derive(Serialize)]
struct Header<'a> {
    name: &'static str,
    value: &'a str,
}

#[derive(Serialize)]
struct Path<'a> {
    path: &'a str,
}

#[derive(Serialize)]
struct Code {
    code: u16,
}

#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_uid: Option<&'a str>,
    log_name: &'static str,
    product: Product,
    uid: &'a str,
    version: &'static str,
}

#[derive(Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Resource<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<Name<'a>>,
    name: &'a str,
    r#type: &'static str,
    uid: String,
}

#[derive(Serialize)]
struct Ip<'a> {
    ip: &'a str,
}

/// What the OCSF members do not hold, under the native names.
#[derive(Serialize)]
struct Unmapped<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    aborted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<&'a [String]>,
    bytes_in: u64,
    bytes_out: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_key: Option<Value>,
    decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    dlp: Option<Value>,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_scopes: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Kind, TlsFacts};

    /// The tree's record of `ev` (as `Audit::serialise` and `start_record` made it before).
    fn by_tree(ev: &Event, start: Option<u16>) -> Vec<u8> {
        let mut v = serde_json::to_value(ev).unwrap();
        if let Some(status) = start {
            v["kind"] = "request_start".into();
            v["status"] = status.into();
            v["decision"] = "allow".into();
            v["reason"] = "ok".into();
        }
        super::super::encode_value(v)
    }

    fn request() -> Event {
        let mut ev = Event::blank(Kind::Request);
        ev.request_id = "01JREQUEST".into();
        ev.client_ip = "192.0.2.7".into();
        ev.method = "GET".into();
        ev.path = "/exports/a/b.csv".into();
        ev.status = 200;
        ev.reason = "ok".into();
        ev.duration_ms = 12.625;
        ev
    }

    #[test]
    fn request_records_are_the_bytes_the_tree_writes() {
        let mut cases = vec![request()];
        let mut full = request();
        full.session_id = Some("s_1".into());
        full.partner = Some("acme".into());
        full.user_agent = Some("curl/8 \"quoted\"".into());
        full.share = Some("exports".into());
        full.key = Some("a/b.csv".into());
        full.range = Some("bytes=0-9".into());
        full.bytes_in = 3;
        full.bytes_out = 10;
        full.aborted = true;
        full.key_id = Some("local-1".into());
        full.expires_in = Some(900);
        full.scopes = Some(vec!["exports".into()]);
        full.idp = Some("https://idp.test/".into());
        full.amr = Some(vec!["pwd".into(), "mfa".into()]);
        full.requested_scopes = Some(vec!["exports".into(), "other".into()]);
        full.tls = Some(TlsFacts {
            version: "TLSv1_3",
            cipher: "TLS13_AES_256_GCM_SHA384",
        });
        full.data_key = Some(crate::audit::trace::DataKeyUse {
            key_id: "local-1".into(),
            source: "cache",
        });
        full.upstream_ms = Some(3.5);
        full.dlp = Some(crate::data::DlpRecord {
            profile: "pii".into(),
            outcome: "blocked",
            source: "prescan",
            classification: None,
            findings: Vec::new(),
        });
        cases.push(full.clone());
        let mut denied = full.clone();
        denied.decision = Decision::Deny;
        denied.reason = "no_grant".into();
        denied.status = 403;
        denied.dlp = None;
        cases.push(denied);
        // A listing, an upload's start (status 0), a key without a share, an unauthenticated
        // refusal without method, another method, a client address that is not an IP.
        let mut list = request();
        list.share = Some("exports".into());
        cases.push(list);
        let mut put = full.clone();
        put.method = "PUT".into();
        put.status = 0;
        put.dlp = None;
        cases.push(put);
        let mut keyed = request();
        keyed.key = Some("k".into());
        keyed.method = "DELETE".into();
        cases.push(keyed);
        let mut bare = request();
        bare.method = String::new();
        bare.status = 0;
        bare.client_ip = "unknown".into();
        bare.decision = Decision::Deny;
        bare.reason = String::new();
        cases.push(bare);
        let mut other = request();
        other.method = "POST".into();
        other.share = Some("exports".into());
        other.key = Some("x".into());
        other.duration_ms = f64::NAN;
        cases.push(other);
        for ev in &cases {
            for start in [None, Some(0), Some(200), Some(206)] {
                let (fast, tree) = (encode(ev, start), by_tree(ev, start));
                assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&tree),
                    "{start:?}"
                );
            }
        }
    }
}
