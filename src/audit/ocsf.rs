//! `gatehouse audit export --format ocsf`: the native trail as OCSF 1.3 events.
//!
//! Takes native records (JSON values as the trail holds them); gives one OCSF event per
//! record that has a counterpart: data requests and aggregated refusals as API Activity
//! (class 6003), token events as Authentication Logon and session ends as Authentication
//! Logoff (class 3002). Everything gatehouse-specific (reason code, decision, session id,
//! chain position, DLP verdict, byte counts) goes into `unmapped`. Other kinds (checkpoints,
//! `request_start`, alerts, admin records) give `None`. The native trail stays the record of truth: the hash chain is over its
//! lines, not over this export. docs/audit.md has the mapping table.

use serde_json::{Map, Value, json};

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.3.0";

const API_ACTIVITY: u64 = 6003;
const AUTHENTICATION: u64 = 3002;

/// The OCSF event for a native record, or `None` for kinds without one.
pub fn convert(v: &Value) -> Option<Value> {
    match v["kind"].as_str()? {
        "request" => Some(api_activity(v)),
        "refusals_aggregated" => Some(aggregated(v)),
        "token" => Some(authentication(v, 1, "Logon")),
        "session" => Some(authentication(v, 2, "Logoff")),
        _ => None,
    }
}

fn api_activity(v: &Value) -> Value {
    let method = str_of(v, "method");
    let key = v["key"].as_str();
    let share = v["share"].as_str();
    let (activity_id, activity) = match (method, key) {
        ("GET" | "HEAD", _) => (2, "Read"),
        ("PUT", _) => (1, "Create"),
        ("DELETE", _) => (4, "Delete"),
        ("", _) => (0, "Unknown"),
        _ => (99, "Other"),
    };
    let operation = match (method, share, key) {
        ("GET", Some(_), Some(_)) => "GetObject",
        ("HEAD", Some(_), Some(_)) => "HeadObject",
        ("GET", Some(_), None) => "ListObjectsV2",
        ("HEAD", Some(_), None) => "HeadBucket",
        ("PUT", Some(_), Some(_)) => "PutObject",
        ("DELETE", Some(_), Some(_)) => "DeleteObject",
        (m, _, _) => m,
    };
    let mut e = base(v, API_ACTIVITY, "API Activity", 6, "Application Activity");
    activity_fields(&mut e, API_ACTIVITY, "API Activity", activity_id, activity);
    e.insert(
        "api".into(),
        json!({
            "operation": operation,
            "service": {"name": "gatehouse"},
            "request": {"uid": v["request_id"]},
        }),
    );
    e.insert("actor".into(), actor(v));
    let mut resources = Vec::new();
    match (share, key) {
        (Some(s), Some(k)) => resources.push(json!({
            "type": "object", "uid": format!("{s}/{k}"), "name": k, "group": {"name": s},
        })),
        (Some(s), None) => resources.push(json!({"type": "share", "uid": s, "name": s})),
        _ => {}
    }
    if !resources.is_empty() {
        e.insert("resources".into(), Value::Array(resources));
    }
    Value::Object(e)
}

/// Aggregated unauthenticated refusals: one API Activity with `count` and the span.
fn aggregated(v: &Value) -> Value {
    let mut e = base(v, API_ACTIVITY, "API Activity", 6, "Application Activity");
    activity_fields(&mut e, API_ACTIVITY, "API Activity", 0, "Unknown");
    e.insert("count".into(), v["count"].clone());
    for (native, ocsf) in [("first", "start_time"), ("last", "end_time")] {
        if let Some(ms) = millis(&v[native]) {
            e.insert(ocsf.into(), ms.into());
        }
    }
    e.insert(
        "api".into(),
        json!({"operation": "unauthenticated requests", "service": {"name": "gatehouse"}}),
    );
    e.insert("actor".into(), json!({}));
    e.insert("status_detail".into(), "refusals_aggregated".into());
    let unmapped = e.entry("unmapped").or_insert_with(|| json!({}));
    unmapped["reasons"] = v["reasons"].clone();
    Value::Object(e)
}

fn authentication(v: &Value, activity_id: u64, activity: &str) -> Value {
    let mut e = base(
        v,
        AUTHENTICATION,
        "Authentication",
        3,
        "Identity & Access Management",
    );
    activity_fields(
        &mut e,
        AUTHENTICATION,
        "Authentication",
        activity_id,
        activity,
    );
    if v["kind"] == "session" {
        // A session end is no HTTP exchange (its native `method` is `SESSION`).
        e.remove("http_request");
        e.remove("http_response");
        e.remove("status_code");
    }
    if let Some(p) = v["partner"].as_str() {
        e.insert("user".into(), json!({"uid": p, "type": "partner"}));
    } else {
        e.insert("user".into(), json!({}));
    }
    e.insert("auth_protocol_id".into(), 6.into());
    e.insert("auth_protocol".into(), "OAUTH 2.0".into());
    e.insert("service".into(), json!({"name": "gatehouse"}));
    if let Some(sid) = v["session_id"].as_str() {
        let mut session = json!({"uid": sid});
        if let (Some(t), Some(secs)) = (millis(&v["time"]), v["expires_in"].as_i64()) {
            session["expiration_time"] = (t + secs * 1000).into();
        }
        e.insert("session".into(), session);
    }
    let unmapped = e.entry("unmapped").or_insert_with(|| json!({}));
    for name in ["key_id", "scopes", "expires_in", "tls"] {
        if !v[name].is_null() {
            unmapped[name] = v[name].clone();
        }
    }
    Value::Object(e)
}

/// What every event carries: class, time, status, severity, metadata, endpoints, HTTP and
/// the gatehouse-specific `unmapped` fields.
fn base(
    v: &Value,
    class_uid: u64,
    class_name: &str,
    category_uid: u64,
    category_name: &str,
) -> Map<String, Value> {
    let deny = v["decision"] == "deny";
    let blocked = v["dlp"]["outcome"] == "blocked";
    let (status_id, status) = if deny { (2, "Failure") } else { (1, "Success") };
    let (severity_id, severity) = match (deny, blocked) {
        (_, true) => (3, "Medium"),
        (true, false) => (2, "Low"),
        (false, false) => (1, "Informational"),
    };
    let mut e = Map::new();
    e.insert("class_uid".into(), class_uid.into());
    e.insert("class_name".into(), class_name.into());
    e.insert("category_uid".into(), category_uid.into());
    e.insert("category_name".into(), category_name.into());
    e.insert("time".into(), millis(&v["time"]).unwrap_or(0).into());
    e.insert("timezone_offset".into(), 0.into());
    e.insert("severity_id".into(), severity_id.into());
    e.insert("severity".into(), severity.into());
    e.insert("status_id".into(), status_id.into());
    e.insert("status".into(), status.into());
    if let Some(code) = v["status"].as_u64() {
        e.insert("status_code".into(), code.to_string().into());
    }
    if let Some(reason) = v["reason"].as_str() {
        e.insert("status_detail".into(), reason.into());
    }
    let mut metadata = json!({
        "version": OCSF_VERSION,
        "product": {"name": "gatehouse", "vendor_name": "gatehouse",
                    "version": env!("CARGO_PKG_VERSION")},
        "log_name": "gatehouse-audit",
        "original_time": v["time"],
    });
    if let Some(id) = v["request_id"].as_str() {
        metadata["uid"] = id.into();
    }
    e.insert("metadata".into(), metadata);
    if let Some(ip) = v["client_ip"].as_str().filter(|ip| *ip != "*") {
        e.insert("src_endpoint".into(), json!({"ip": ip}));
    }
    if let Some(method) = v["method"].as_str() {
        let mut req = json!({"http_method": method});
        if let Some(path) = v["path"].as_str() {
            req["url"] = json!({"path": path});
        }
        if let Some(ua) = v["user_agent"].as_str() {
            req["user_agent"] = ua.into();
        }
        e.insert("http_request".into(), req);
    }
    if let Some(code) = v["status"].as_u64() {
        e.insert("http_response".into(), json!({"code": code}));
    }
    e.insert("unmapped".into(), unmapped(v));
    e
}

fn activity_fields(
    e: &mut Map<String, Value>,
    class_uid: u64,
    class_name: &str,
    activity_id: u64,
    activity: &str,
) {
    e.insert("activity_id".into(), activity_id.into());
    e.insert("activity_name".into(), activity.into());
    e.insert("type_uid".into(), (class_uid * 100 + activity_id).into());
    e.insert(
        "type_name".into(),
        format!("{class_name}: {activity}").into(),
    );
}

fn actor(v: &Value) -> Value {
    let mut actor = json!({});
    if let Some(p) = v["partner"].as_str() {
        actor["user"] = json!({"uid": p, "type": "partner"});
    }
    if let Some(sid) = v["session_id"].as_str() {
        actor["session"] = json!({"uid": sid});
    }
    actor
}

/// The gatehouse fields OCSF has no place for, under their native names (`chain_seq` for
/// the record's position in the hash chain).
fn unmapped(v: &Value) -> Value {
    let mut u = json!({"kind": v["kind"]});
    for name in [
        "reason",
        "decision",
        "session_id",
        "range",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "aborted",
        "dlp",
    ] {
        if !v[name].is_null() {
            u[name] = v[name].clone();
        }
    }
    if let Some(seq) = v["chain"]["seq"].as_u64() {
        u["chain_seq"] = seq.into();
    }
    u
}

fn str_of<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or("")
}

/// An RFC 3339 time as epoch milliseconds.
fn millis(t: &Value) -> Option<i64> {
    t.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_read_is_api_activity_with_the_request_id_as_uid() {
        let e = convert(&rec(
            r#"{"time":"2026-11-28T00:37:39.690Z","kind":"request","request_id":"01R","session_id":"s_1","partner":"demo","client_ip":"127.0.0.1","user_agent":"curl/8","method":"GET","path":"/demo/a.csv","share":"demo","key":"a.csv","status":200,"decision":"allow","reason":"ok","bytes_in":0,"bytes_out":70,"duration_ms":0.4,"dlp":{"profile":"pii","outcome":"transformed","source":"prescan","findings":[{"entity":"email","detector":"email","action":"tokenize","count":2}]},"chain":{"seq":57,"prev":"00"}}"#,
        ))
        .unwrap();
        assert_eq!(e["class_uid"], 6003);
        assert_eq!(
            (e["activity_id"].clone(), e["type_uid"].clone()),
            (2.into(), 600302.into())
        );
        assert_eq!(e["api"]["operation"], "GetObject");
        assert_eq!(e["time"], 1_795_826_259_690_i64);
        assert_eq!(e["metadata"]["uid"], "01R");
        assert_eq!(e["metadata"]["product"]["name"], "gatehouse");
        assert_eq!(e["actor"]["user"]["uid"], "demo");
        assert_eq!(e["src_endpoint"]["ip"], "127.0.0.1");
        assert_eq!(e["http_request"]["http_method"], "GET");
        assert_eq!(
            (e["status_id"].clone(), e["status"].clone()),
            (1.into(), "Success".into())
        );
        assert_eq!(e["resources"][0]["uid"], "demo/a.csv");
        assert_eq!(e["unmapped"]["chain_seq"], 57);
        assert_eq!(e["unmapped"]["dlp"]["findings"][0]["count"], 2);
        assert_eq!(e["unmapped"]["session_id"], "s_1");
    }

    #[test]
    fn refusals_tokens_and_other_kinds() {
        let denied = convert(&rec(
            r#"{"time":"2026-01-01T00:00:00Z","kind":"request","request_id":"r","partner":"p","client_ip":"10.0.0.1","method":"DELETE","share":"s","key":"k","status":403,"decision":"deny","reason":"no_grant"}"#,
        ))
        .unwrap();
        assert_eq!(
            (denied["activity_id"].clone(), denied["status_id"].clone()),
            (4.into(), 2.into())
        );
        assert_eq!(denied["unmapped"]["reason"], "no_grant");
        assert_eq!(denied["status_detail"], "no_grant");
        let token = convert(&rec(
            r#"{"time":"2026-01-01T00:00:00Z","kind":"token","request_id":"t","session_id":"s_2","partner":"p","client_ip":"10.0.0.1","method":"POST","path":"/v1/token","status":200,"decision":"allow","reason":"token_issued","expires_in":900,"key_id":"p-1"}"#,
        ))
        .unwrap();
        assert_eq!(
            (token["class_uid"].clone(), token["type_uid"].clone()),
            (3002.into(), 300201.into())
        );
        assert_eq!(token["user"]["uid"], "p");
        assert_eq!(
            token["session"]["expiration_time"],
            1_767_225_600_000_i64 + 900_000
        );
        assert_eq!(token["unmapped"]["key_id"], "p-1");
        let agg = convert(&rec(
            r#"{"time":"2026-01-01T00:01:00Z","kind":"refusals_aggregated","client_ip":"*","decision":"deny","count":9,"reasons":{"token_missing":9},"first":"2026-01-01T00:00:00Z","last":"2026-01-01T00:00:59Z"}"#,
        ))
        .unwrap();
        assert_eq!(
            (agg["count"].clone(), agg["status_id"].clone()),
            (9.into(), 2.into())
        );
        assert!(agg.get("src_endpoint").is_none(), "`*` is no address");
        assert_eq!(agg["unmapped"]["reasons"]["token_missing"], 9);
        let end = convert(&rec(
            r#"{"time":"2026-01-01T01:00:00Z","kind":"session","session_id":"s_2","partner":"p","decision":"allow","reason":"session_expired"}"#,
        ))
        .unwrap();
        assert_eq!(
            (end["type_uid"].clone(), end["status_detail"].clone()),
            (300202.into(), "session_expired".into())
        );
        assert!(end.get("http_request").is_none());
        for kind in [
            "checkpoint",
            "request_start",
            "trail_opened",
            "alert",
            "admin",
        ] {
            assert!(
                convert(&rec(&format!(r#"{{"kind":"{kind}"}}"#))).is_none(),
                "{kind}"
            );
        }
    }
}
