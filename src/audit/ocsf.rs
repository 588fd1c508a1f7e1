//! The trail's record format: every line is an OCSF 1.3 event.
//!
//! Takes the native record a producer serialised (flat gatehouse names: `time`, `kind`,
//! `partner`, `reason`, ...); [`encode`] gives the line the writer chains: an OCSF event
//! whose class follows the record's kind, with every gatehouse field that OCSF has no place
//! for under the one extension object `unmapped` (the writer adds the hash chain, and
//! checkpoints their signature, inside it). [`native`] is the inverse view the analyst tools
//! (search, report, review, alerts' tests) read: the same flat names back, whatever OCSF
//! object holds them. Lines written before the trail was OCSF (no `class_uid`) read as they
//! are. docs/audit.md has the mapping table.
//!
//! | kind | OCSF class (activity) |
//! |---|---|
//! | `request`, `request_start`, `refusals_aggregated` | API Activity 6003 (Create, Read, Delete, Other, Unknown) |
//! | `token` | Authentication 3002 (Logon) |
//! | `session` | Authentication 3002 (Logoff) |
//! | `admin` (revocations) | User Access Management 3005 (Revoke Privileges) |
//! | `admin` (config reloads) | Entity Management 3004 (Update) |
//! | `alert` | Detection Finding 2004 (Create) |
//! | `trail_opened`, `checkpoint` | Event Log Activity 1008 (Start, Rotate, Stop, Other) |

use serde_json::{Map, Value, json};

mod request;

pub(super) use request::encode as encode_request;

/// The OCSF line of an event, as the writer chains it: data requests are written straight
/// from the event, other kinds through [`encode_value`]. `None` when the event cannot be
/// serialised.
pub fn encode_event(event: &super::Event) -> Option<Vec<u8>> {
    if event.kind == super::Kind::Request {
        return Some(encode_request(event, None));
    }
    serde_json::to_value(event).ok().map(encode_value)
}

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.3.0";

/// The OCSF line for a native record (a JSON object). The result is one JSON object whose
/// last member is `unmapped`, an object (possibly empty): the writer splices the chain into it.
pub fn encode(native: &[u8]) -> Vec<u8> {
    encode_value(serde_json::from_slice(native).unwrap_or(Value::Null))
}

/// [`encode`] for a record already in memory as a JSON value.
pub fn encode_value(native: Value) -> Vec<u8> {
    let n = match native {
        Value::Object(m) => m,
        _ => {
            let mut m = Map::new();
            m.insert("kind".into(), "unreadable".into());
            m
        }
    };
    let (event, unmapped) = to_ocsf(n);
    let mut out = serde_json::to_vec(&Value::Object(event)).unwrap_or_else(|_| b"{}".to_vec());
    out.pop();
    if out.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"unmapped\":");
    if serde_json::to_writer(&mut out, &Value::Object(unmapped)).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.push(b'}');
    out
}

/// The record's gatehouse kind (`request`, `token`, `checkpoint`, ...), for either format.
pub fn kind(v: &Value) -> &str {
    let k = if is_ocsf(v) {
        &v["unmapped"]["kind"]
    } else {
        &v["kind"]
    };
    k.as_str().unwrap_or("")
}

/// The gatehouse extension object of a line: `unmapped` of an OCSF line, the whole record of
/// an older native line.
pub fn extension(v: &Value) -> &Value {
    if is_ocsf(v) { &v["unmapped"] } else { v }
}

/// Whether a parsed line is an OCSF event (not a line of the older native format).
pub fn is_ocsf(v: &Value) -> bool {
    v.get("class_uid").is_some()
}

/// The flat native view of a line: gatehouse's own field names, as producers wrote them.
pub fn native(v: &Value) -> Value {
    if !is_ocsf(v) {
        return v.clone();
    }
    let mut n = v["unmapped"].as_object().cloned().unwrap_or_default();
    let mut put = |name: &str, value: &Value| {
        if !value.is_null() && !n.contains_key(name) {
            n.insert(name.to_string(), value.clone());
        }
    };
    put("time", &v["time_dt"]);
    put("request_id", &v["metadata"]["uid"]);
    put("partner", &v["actor"]["user"]["uid"]);
    put("partner", &v["user"]["uid"]);
    put("session_id", &v["actor"]["session"]["uid"]);
    put("session_id", &v["session"]["uid"]);
    put("idp", &v["session"]["issuer"]);
    put("client_ip", &v["src_endpoint"]["ip"]);
    let req = &v["http_request"];
    put("method", &req["http_method"]);
    put("path", &req["url"]["path"]);
    put("user_agent", &req["user_agent"]);
    if let Some(headers) = req["http_headers"].as_array() {
        for h in headers.iter().filter(|h| h["name"] == "Range") {
            put("range", &h["value"]);
        }
    }
    put("status", &v["http_response"]["code"]);
    put("reason", &v["status_detail"]);
    put("count", &v["count"]);
    if let Some(r) = v["resources"].as_array().and_then(|r| r.first()) {
        match r["type"].as_str() {
            Some("object") => {
                put("share", &r["group"]["name"]);
                put("key", &r["name"]);
            }
            Some("share") => put("share", &r["uid"]),
            _ => {}
        }
    }
    Value::Object(n)
}

/// Splits a native record into the OCSF event (without `unmapped`) and the fields left for
/// `unmapped`: everything the event does not hold, `kind` always.
fn to_ocsf(mut n: Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
    let kind = n
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut e = Map::new();
    let reason = n.get("reason").and_then(Value::as_str).unwrap_or("");
    let kind = match kind.as_str() {
        // Reloads are changes to the gateway's configuration, not to anyone's access.
        "admin" if reason.starts_with("config_") => "admin_config".to_string(),
        _ => kind,
    };
    let (class_uid, class_name, category_uid, category_name) = class_of(&kind);
    e.insert("class_uid".into(), class_uid.into());
    e.insert("class_name".into(), class_name.into());
    e.insert("category_uid".into(), category_uid.into());
    e.insert("category_name".into(), category_name.into());
    let (activity_id, activity) = activity_of(&kind, &n);
    e.insert("activity_id".into(), activity_id.into());
    e.insert("activity_name".into(), activity.into());
    e.insert("type_uid".into(), (class_uid * 100 + activity_id).into());
    e.insert(
        "type_name".into(),
        format!("{class_name}: {activity}").into(),
    );
    if let Some(t) = n.remove("time") {
        e.insert("time".into(), millis(&t).unwrap_or(0).into());
        e.insert("time_dt".into(), t);
    }
    e.insert("timezone_offset".into(), 0.into());
    let (severity_id, severity) = severity_of(&kind, &n);
    e.insert("severity_id".into(), severity_id.into());
    e.insert("severity".into(), severity.into());
    let (status_id, status) = status_of(&kind, &n);
    e.insert("status_id".into(), status_id.into());
    e.insert("status".into(), status.into());
    if let Some(reason) = n.remove("reason") {
        e.insert("status_detail".into(), reason);
    }
    if let Some(ms) = n.get("duration_ms").and_then(Value::as_f64) {
        e.insert("duration".into(), (ms.round() as i64).into());
    }
    let mut metadata = json!({
        "version": OCSF_VERSION,
        "product": {"name": "gatehouse", "vendor_name": "gatehouse",
                    "version": env!("CARGO_PKG_VERSION")},
        "log_name": "gatehouse-audit",
    });
    if let Some(id) = n.remove("request_id") {
        metadata["uid"] = id;
    }
    if let Some(sid) = n.get("session_id") {
        metadata["correlation_uid"] = sid.clone();
    }
    e.insert("metadata".into(), metadata);
    if let Some(ip) = n.get("client_ip").and_then(Value::as_str)
        && ip.parse::<std::net::IpAddr>().is_ok()
    {
        e.insert("src_endpoint".into(), json!({"ip": ip}));
        n.remove("client_ip");
    }
    let http = matches!(
        kind.as_str(),
        "request" | "request_start" | "token" | "admin" | "admin_config"
    );
    if http {
        http_fields(&mut e, &mut n);
    }
    match class_uid {
        API_ACTIVITY => api_activity(&mut e, &mut n),
        AUTHENTICATION => authentication(&mut e, &mut n),
        USER_ACCESS => {
            // The partner (or session) whose access was taken away, by the operator.
            let user = match n.remove("partner") {
                Some(p) => partner_user(p),
                None => json!({}),
            };
            e.insert("user".into(), user);
            e.insert("privileges".into(), json!(["share access"]));
            if let Some(sid) = n.remove("session_id") {
                e.insert("session".into(), json!({ "uid": sid }));
            }
            e.insert(
                "actor".into(),
                json!({"user": {"type_id": 2, "type": "Admin"}}),
            );
        }
        ENTITY_MANAGEMENT => {
            e.insert(
                "entity".into(),
                json!({"type": "configuration", "name": "gatehouse"}),
            );
            e.insert(
                "actor".into(),
                json!({"user": {"type_id": 2, "type": "Admin"}}),
            );
        }
        DETECTION_FINDING => finding(&mut e, &mut n),
        _ => {}
    }
    (e, n)
}

const API_ACTIVITY: u64 = 6003;
const AUTHENTICATION: u64 = 3002;
const USER_ACCESS: u64 = 3005;
const ENTITY_MANAGEMENT: u64 = 3004;
const DETECTION_FINDING: u64 = 2004;
const EVENT_LOG: u64 = 1008;

fn class_of(kind: &str) -> (u64, &'static str, u64, &'static str) {
    match kind {
        "request" | "request_start" | "refusals_aggregated" => {
            (API_ACTIVITY, "API Activity", 6, "Application Activity")
        }
        "token" | "session" => (
            AUTHENTICATION,
            "Authentication",
            3,
            "Identity & Access Management",
        ),
        "admin" => (
            USER_ACCESS,
            "User Access Management",
            3,
            "Identity & Access Management",
        ),
        "admin_config" => (
            ENTITY_MANAGEMENT,
            "Entity Management",
            3,
            "Identity & Access Management",
        ),
        "alert" => (DETECTION_FINDING, "Detection Finding", 2, "Findings"),
        "trail_opened" | "checkpoint" => (EVENT_LOG, "Event Log Activity", 1, "System Activity"),
        _ => (0, "Base Event", 0, "Uncategorized"),
    }
}

/// The activity of a data request, by its HTTP method.
fn request_activity(method: &str) -> (u64, &'static str) {
    match method {
        "GET" | "HEAD" => (2, "Read"),
        "PUT" => (1, "Create"),
        "DELETE" => (4, "Delete"),
        "" => (0, "Unknown"),
        _ => (99, "Other"),
    }
}

/// The S3 operation a data request stands for (`api.operation`).
fn operation(method: &str, share: bool, key: bool) -> &str {
    match (method, share, key) {
        ("GET", true, true) => "GetObject",
        ("HEAD", true, true) => "HeadObject",
        ("GET", true, false) => "ListObjectsV2",
        ("HEAD", true, false) => "HeadBucket",
        ("PUT", true, true) => "PutObject",
        ("DELETE", true, true) => "DeleteObject",
        ("", _, _) => "unauthenticated requests",
        (m, _, _) => m,
    }
}

fn activity_of(kind: &str, n: &Map<String, Value>) -> (u64, &'static str) {
    let method = n.get("method").and_then(Value::as_str).unwrap_or("");
    match kind {
        "request" | "request_start" => request_activity(method),
        "refusals_aggregated" => (0, "Unknown"),
        "token" => (1, "Logon"),
        "session" => (2, "Logoff"),
        "admin" => (2, "Revoke Privileges"),
        "admin_config" => (3, "Update"),
        "alert" => (1, "Create"),
        "trail_opened" => (6, "Start"),
        "checkpoint" => match n
            .get("checkpoint")
            .and_then(|c| c["reason"].as_str())
            .unwrap_or("")
        {
            "rotation" => (5, "Rotate"),
            "shutdown" => (7, "Stop"),
            _ => (99, "Other"),
        },
        _ => (0, "Unknown"),
    }
}

fn severity_of(kind: &str, n: &Map<String, Value>) -> (u64, &'static str) {
    let deny = n.get("decision").and_then(Value::as_str) == Some("deny");
    let blocked = n
        .get("dlp")
        .is_some_and(|d| d["outcome"] == "blocked" || d["outcome"] == "unscannable_blocked");
    match kind {
        "alert" if n.get("reason").and_then(Value::as_str) == Some("dlp_block") => (4, "High"),
        "alert" => (3, "Medium"),
        _ if blocked => (3, "Medium"),
        _ if deny => (2, "Low"),
        _ => (1, "Informational"),
    }
}

fn status_of(kind: &str, n: &Map<String, Value>) -> (u64, &'static str) {
    match (kind, n.get("decision").and_then(Value::as_str)) {
        ("request_start", _) => (0, "Unknown"),
        (_, Some("deny")) => (2, "Failure"),
        _ => (1, "Success"),
    }
}

/// Method, path, user agent, Range and status into `http_request` / `http_response`.
fn http_fields(e: &mut Map<String, Value>, n: &mut Map<String, Value>) {
    let mut req = Map::new();
    if let Some(m) = n.remove("method") {
        req.insert("http_method".into(), m);
    }
    if let Some(p) = n.remove("path") {
        req.insert("url".into(), json!({ "path": p }));
    }
    if let Some(ua) = n.remove("user_agent") {
        req.insert("user_agent".into(), ua);
    }
    if let Some(r) = n.remove("range") {
        req.insert(
            "http_headers".into(),
            json!([{"name": "Range", "value": r}]),
        );
    }
    if !req.is_empty() {
        e.insert("http_request".into(), Value::Object(req));
    }
    if let Some(code) = n.get("status").and_then(Value::as_u64).filter(|c| *c > 0) {
        e.insert("http_response".into(), json!({ "code": code }));
        e.insert("status_code".into(), code.to_string().into());
        n.remove("status");
    }
}

/// The partner and session as `actor` (taken from `n`).
fn actor(n: &mut Map<String, Value>) -> Value {
    let mut actor = json!({});
    if let Some(p) = n.remove("partner") {
        actor["user"] = partner_user(p);
    }
    if let Some(sid) = n.remove("session_id") {
        actor["session"] = json!({ "uid": sid });
    }
    actor
}

fn partner_user(p: Value) -> Value {
    json!({"uid": p, "name": p, "type_id": 99, "type": "Partner"})
}

fn api_activity(e: &mut Map<String, Value>, n: &mut Map<String, Value>) {
    let method = e
        .get("http_request")
        .and_then(|r| r["http_method"].as_str())
        .unwrap_or("");
    let share = n.get("share").and_then(Value::as_str).map(str::to_owned);
    let key = n.get("key").and_then(Value::as_str).map(str::to_owned);
    let operation = operation(method, share.is_some(), key.is_some()).to_string();
    let mut api = json!({"operation": operation, "service": {"name": "gatehouse"}});
    if let Some(id) = e.get("metadata").and_then(|m| m.get("uid")) {
        api["request"] = json!({ "uid": id });
    }
    e.insert("api".into(), api);
    let actor = actor(n);
    e.insert("actor".into(), actor);
    match (share, key) {
        (Some(s), Some(k)) => {
            e.insert(
                "resources".into(),
                json!([{"type": "object", "uid": format!("{s}/{k}"), "name": k, "group": {"name": s}}]),
            );
            n.remove("share");
            n.remove("key");
        }
        (Some(s), None) => {
            e.insert(
                "resources".into(),
                json!([{"type": "share", "uid": s, "name": s}]),
            );
            n.remove("share");
        }
        _ => {}
    }
    if let Some(c) = n.remove("count") {
        e.insert("count".into(), c);
    }
    for (native, ocsf) in [("first", "start_time"), ("last", "end_time")] {
        if let Some(ms) = n.get(native).and_then(millis) {
            e.insert(ocsf.into(), ms.into());
        }
    }
}

fn authentication(e: &mut Map<String, Value>, n: &mut Map<String, Value>) {
    let user = match n.remove("partner") {
        Some(p) => partner_user(p),
        None => json!({}),
    };
    e.insert("user".into(), user);
    e.insert("auth_protocol_id".into(), 6.into());
    e.insert("auth_protocol".into(), "OAUTH 2.0".into());
    e.insert("service".into(), json!({"name": "gatehouse"}));
    let mut session = Map::new();
    if let Some(sid) = n.remove("session_id") {
        session.insert("uid".into(), sid);
    }
    if let Some(idp) = n.remove("idp") {
        session.insert("issuer".into(), idp);
    }
    if let (Some(t), Some(secs)) = (
        e.get("time").and_then(Value::as_i64),
        n.get("expires_in").and_then(Value::as_i64),
    ) {
        session.insert("expiration_time".into(), (t + secs * 1000).into());
    }
    if !session.is_empty() {
        e.insert("session".into(), Value::Object(session));
    }
    if let Some(amr) = n.get("amr").and_then(Value::as_array) {
        let mfa = amr.iter().any(|m| m == "mfa");
        e.insert("is_mfa".into(), mfa.into());
    }
}

fn finding(e: &mut Map<String, Value>, n: &mut Map<String, Value>) {
    let title = n.get("path").cloned().unwrap_or(Value::Null);
    let rule = e.get("status_detail").cloned().unwrap_or(Value::Null);
    let mut info = json!({"title": title, "types": [rule]});
    if let Some(id) = e.get("metadata").and_then(|m| m.get("uid")) {
        info["uid"] = id.clone();
    }
    e.insert("finding_info".into(), info);
    e.insert("message".into(), title);
    let actor = actor(n);
    e.insert("actor".into(), actor);
}

/// An RFC 3339 time as epoch milliseconds.
fn millis(t: &Value) -> Option<i64> {
    t.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// The export form of a line: the OCSF event with the chain reduced to its position
/// (`unmapped.chain_seq`) and no signature; an older native line is converted first.
pub fn export(v: &Value) -> Value {
    let mut e = if is_ocsf(v) {
        v.clone()
    } else {
        let mut n = v.clone();
        let chain = n.as_object_mut().and_then(|m| m.remove("chain"));
        let mut e: Value = serde_json::from_slice(&encode(
            serde_json::to_vec(&n).unwrap_or_default().as_slice(),
        ))
        .unwrap_or(Value::Null);
        if let Some(c) = chain {
            e["unmapped"]["chain"] = c;
        }
        e
    };
    if let Some(u) = e.get_mut("unmapped").and_then(Value::as_object_mut) {
        let seq = u.remove("chain").and_then(|c| c["seq"].as_u64());
        u.remove("sig");
        if let Some(seq) = seq {
            u.insert("chain_seq".into(), seq.into());
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(json: &str) -> Value {
        let line = encode(json.as_bytes());
        assert!(
            line.ends_with(b"}}"),
            "unmapped is the last member: {}",
            String::from_utf8_lossy(&line)
        );
        serde_json::from_slice(&line).unwrap()
    }

    fn rec(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    const READ: &str = r#"{"time":"2026-11-28T00:37:39.690123Z","kind":"request","request_id":"01R","session_id":"s_1","partner":"demo","client_ip":"127.0.0.1","user_agent":"curl/8","method":"GET","path":"/demo/a.csv","share":"demo","key":"a.csv","range":"bytes=0-9","status":200,"decision":"allow","reason":"ok","bytes_in":0,"bytes_out":70,"duration_ms":0.4,"upstream_ms":0.2,"data_key":{"key_id":"local-1","source":"cache"},"dlp":{"profile":"pii","outcome":"transformed","source":"prescan","findings":[{"entity":"email","detector":"email","action":"tokenize","count":2}]}}"#;

    #[test]
    fn a_read_is_api_activity_and_reads_back_unchanged() {
        let e = enc(READ);
        assert_eq!(e["class_uid"], 6003);
        assert_eq!(
            (e["activity_id"].clone(), e["type_uid"].clone()),
            (2.into(), 600302.into())
        );
        assert_eq!(e["api"]["operation"], "GetObject");
        assert_eq!(e["time"], 1_795_826_259_690_i64);
        assert_eq!(e["time_dt"], "2026-11-28T00:37:39.690123Z");
        assert_eq!(e["metadata"]["uid"], "01R");
        assert_eq!(e["metadata"]["correlation_uid"], "s_1");
        assert_eq!(e["metadata"]["version"], OCSF_VERSION);
        assert_eq!(e["actor"]["user"]["uid"], "demo");
        assert_eq!(e["actor"]["session"]["uid"], "s_1");
        assert_eq!(e["src_endpoint"]["ip"], "127.0.0.1");
        assert_eq!(e["http_request"]["http_method"], "GET");
        assert_eq!(e["http_request"]["http_headers"][0]["value"], "bytes=0-9");
        assert_eq!(e["http_response"]["code"], 200);
        assert_eq!(
            (e["status_id"].clone(), e["status"].clone()),
            (1.into(), "Success".into())
        );
        assert_eq!(e["status_detail"], "ok");
        assert_eq!(e["resources"][0]["uid"], "demo/a.csv");
        assert_eq!(e["duration"], 0);
        // Gatehouse's own fields, and only those, in the extension object.
        let u = e["unmapped"].as_object().unwrap();
        let mut names: Vec<&str> = u.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "bytes_in",
                "bytes_out",
                "data_key",
                "decision",
                "dlp",
                "duration_ms",
                "kind",
                "upstream_ms"
            ]
        );
        assert_eq!(
            native(&e),
            rec(READ),
            "the native view is the record written"
        );
        assert_eq!(kind(&e), "request");
    }

    #[test]
    fn every_kind_has_its_class_and_reads_back() {
        let cases = [
            (
                r#"{"time":"2026-01-01T00:00:00Z","kind":"request","request_id":"r","partner":"p","client_ip":"10.0.0.1","method":"DELETE","path":"/s/k","share":"s","key":"k","status":403,"decision":"deny","reason":"no_grant","bytes_in":0,"bytes_out":0,"duration_ms":1.0}"#,
                600304,
                2,
            ),
            (
                r#"{"time":"2026-01-01T00:00:00Z","kind":"request_start","request_id":"r","session_id":"s","partner":"p","client_ip":"::1","method":"PUT","path":"/s/k","share":"s","key":"k","status":0,"decision":"allow","reason":"ok"}"#,
                600301,
                0,
            ),
            (
                r#"{"time":"2026-01-01T00:00:00Z","kind":"token","request_id":"t","session_id":"s_2","partner":"p","client_ip":"10.0.0.1","method":"POST","path":"/v1/token","status":200,"decision":"allow","reason":"token_exchanged","expires_in":900,"key_id":"idp-k","idp":"https://idp.example","amr":["pwd","otp"],"scopes":["a"],"requested_scopes":["a"],"tls":{"version":"TLSv1_3","cipher":"TLS13_AES_256_GCM_SHA384"}}"#,
                300201,
                1,
            ),
            (
                r#"{"time":"2026-01-01T01:00:00Z","kind":"session","request_id":"e","session_id":"s_2","partner":"p","client_ip":"10.0.0.1","method":"SESSION","path":"/sessions/s_2","status":0,"decision":"allow","reason":"session_expired","bytes_in":1,"bytes_out":2,"duration_ms":3600000.0}"#,
                300202,
                1,
            ),
            (
                r#"{"time":"2026-01-01T01:00:00Z","kind":"admin","request_id":"a","session_id":"s_2","client_ip":"admin","method":"POST","path":"/revoke","status":200,"decision":"allow","reason":"session_revoked"}"#,
                300502,
                1,
            ),
            (
                r#"{"time":"2026-01-01T01:00:00Z","kind":"admin","request_id":"c","client_ip":"admin","method":"POST","path":"/reload","status":422,"decision":"deny","reason":"config_rejected"}"#,
                300403,
                2,
            ),
            (
                r#"{"time":"2026-01-01T01:00:00Z","kind":"alert","request_id":"r9","partner":"p","client_ip":"10.0.0.1","method":"ALERT","path":"5 denials in 60 s","status":403,"decision":"deny","reason":"denial_burst"}"#,
                200401,
                2,
            ),
            (
                r#"{"time":"2026-01-01T00:01:00Z","kind":"refusals_aggregated","client_ip":"*","decision":"deny","count":9,"reasons":{"token_missing":9},"first":"2026-01-01T00:00:00Z","last":"2026-01-01T00:00:59Z"}"#,
                600300,
                2,
            ),
            (
                r#"{"time":"2026-01-01T00:00:00Z","kind":"trail_opened","previous_end":"new_trail","key_id":"k1","version":"0.1.0"}"#,
                100806,
                1,
            ),
            (
                r#"{"time":"2026-01-01T00:00:00Z","kind":"checkpoint","checkpoint":{"reason":"shutdown","records":3,"key_id":"k1","alg":"Ed25519"}}"#,
                100807,
                1,
            ),
        ];
        for (json, type_uid, status_id) in cases {
            let e = enc(json);
            assert_eq!(e["type_uid"], type_uid, "{json}");
            assert_eq!(e["status_id"], status_id, "{json}");
            assert_eq!(native(&e), rec(json), "{json}");
            assert!(e["class_name"].is_string() && e["metadata"]["product"]["name"] == "gatehouse");
        }
        let token = enc(cases[2].0);
        assert_eq!(token["user"]["uid"], "p");
        assert_eq!(token["session"]["issuer"], "https://idp.example");
        assert_eq!(
            token["session"]["expiration_time"],
            1_767_225_600_000_i64 + 900_000
        );
        assert_eq!(token["is_mfa"], false);
        assert_eq!(token["unmapped"]["amr"][1], "otp");
        let end = enc(cases[3].0);
        assert!(
            end.get("http_request").is_none(),
            "a session end is no HTTP exchange"
        );
        assert_eq!(end["duration"], 3_600_000);
        let admin = enc(cases[4].0);
        assert!(admin.get("src_endpoint").is_none());
        assert_eq!(admin["unmapped"]["client_ip"], "admin");
        assert_eq!(admin["privileges"][0], "share access");
        assert_eq!(admin["session"]["uid"], "s_2");
        let alert = enc(cases[6].0);
        assert_eq!(alert["finding_info"]["types"][0], "denial_burst");
        assert_eq!(alert["message"], "5 denials in 60 s");
        let agg = enc(cases[7].0);
        assert_eq!(agg["count"], 9);
        assert_eq!(agg["start_time"], 1_767_225_600_000_i64);
        assert!(agg.get("src_endpoint").is_none(), "`*` is no address");
    }

    #[test]
    fn older_native_lines_read_as_they_are_and_export_converted() {
        let old = rec(
            r#"{"time":"2026-01-01T00:00:00Z","kind":"request","request_id":"r","partner":"p","client_ip":"10.0.0.1","method":"GET","share":"s","key":"k","status":200,"decision":"allow","reason":"ok","chain":{"seq":7,"prev":"00"}}"#,
        );
        assert_eq!(native(&old), old);
        assert_eq!(kind(&old), "request");
        let e = export(&old);
        assert_eq!(e["class_uid"], 6003);
        assert_eq!(e["unmapped"]["chain_seq"], 7);
        assert!(e["unmapped"].get("chain").is_none());
        let new = enc(READ);
        let mut chained = new.clone();
        chained["unmapped"]["chain"] = json!({"seq": 9, "prev": "00"});
        chained["unmapped"]["sig"] = "x".into();
        let e = export(&chained);
        assert_eq!(e["unmapped"]["chain_seq"], 9);
        assert!(e["unmapped"].get("sig").is_none());
    }
}
