use super::*;

fn rec(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

fn sample() -> Report {
    let now: jiff::Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
    let mut r = Report::new(now, None, None, ["acme", "quiet"]);
    for line in [
        r#"{"time":"2026-02-01T10:00:00Z","kind":"token","request_id":"t1","session_id":"s1","partner":"acme","client_ip":"10.0.0.1","decision":"allow","reason":"token_issued","bytes_in":500,"bytes_out":600}"#,
        r#"{"time":"2026-02-01T10:00:01Z","kind":"request_start","request_id":"r1","session_id":"s1","partner":"acme","client_ip":"10.0.0.1","share":"exports","key":"a.csv","decision":"allow","reason":"ok"}"#,
        r#"{"time":"2026-02-01T10:00:01Z","kind":"request","request_id":"r1","session_id":"s1","partner":"acme","client_ip":"10.0.0.1","method":"GET","share":"exports","key":"a.csv","status":200,"decision":"allow","reason":"ok","bytes_in":0,"bytes_out":100,"dlp":{"profile":"pii","outcome":"transformed","source":"prescan","findings":[{"entity":"email","detector":"email","action":"tokenize","count":3},{"entity":"ssn","detector":"ssn","action":"mask","count":1}]}}"#,
        r#"{"time":"2026-02-03T11:00:00Z","kind":"request","request_id":"r2","session_id":"s2","partner":"acme","client_ip":"10.0.0.2","method":"GET","share":"exports","key":"a.csv","status":200,"decision":"allow","reason":"ok","bytes_in":0,"bytes_out":50,"dlp":{"profile":"pii","outcome":"transformed","source":"recorded","findings":[{"entity":"email","detector":"email","action":"tokenize","count":2}]}}"#,
        r#"{"time":"2026-02-03T11:00:01Z","kind":"request","request_id":"r3","session_id":"s2","partner":"acme","client_ip":"10.0.0.2","method":"PUT","share":"exports","key":"in/b.csv","status":200,"decision":"allow","reason":"ok","bytes_in":7,"bytes_out":0}"#,
        r#"{"time":"2026-02-03T11:00:02Z","kind":"request","request_id":"r4","session_id":"s2","partner":"acme","client_ip":"10.0.0.2","method":"GET","share":"exports","key":"secret","status":404,"decision":"deny","reason":"no_grant","bytes_in":0,"bytes_out":0}"#,
        r#"{"time":"2026-02-03T11:00:03Z","kind":"request","request_id":"r5","client_ip":"192.0.2.9","method":"GET","path":"/x","status":401,"decision":"deny","reason":"token_missing","bytes_in":0,"bytes_out":0}"#,
        r#"{"time":"2026-02-03T11:00:04Z","kind":"token","request_id":"t2","partner":"<script>","client_ip":"192.0.2.9","decision":"deny","reason":"unknown_partner"}"#,
        r#"{"time":"2026-02-03T11:00:05Z","kind":"refusals_aggregated","client_ip":"192.0.2.9","decision":"deny","count":7,"reasons":{"token_missing":5,"token_malformed":2}}"#,
        r#"{"time":"2026-02-03T11:00:06Z","kind":"alert","request_id":"r4","partner":"acme","decision":"deny","reason":"denial_burst"}"#,
        r#"{"time":"2026-02-03T11:00:07Z","kind":"checkpoint"}"#,
    ] {
        r.add(&rec(line));
    }
    r.finish();
    r
}

#[test]
fn counts_per_partner_and_unattributed() {
    let r = sample();
    let a = &r.partners["acme"];
    assert!(a.configured);
    assert_eq!((a.requests, a.allowed, a.denied), (4, 3, 1));
    assert_eq!((a.bytes_in, a.bytes_out), (7, 150));
    assert_eq!(
        a.objects_touched, 2,
        "a.csv twice and in/b.csv; the denied key not"
    );
    assert_eq!(
        a.denials_by_reason,
        BTreeMap::from([("no_grant".into(), 1)])
    );
    assert_eq!((a.tokens_issued, a.tokens_refused), (1, 0));
    assert_eq!(a.dlp_findings["email"]["tokenize"], 5);
    assert_eq!(a.dlp_findings["ssn"]["mask"], 1);
    assert_eq!(a.dlp_outcomes["transformed"], 2);
    assert_eq!(a.source_ips.len(), 2);
    assert_eq!(a.sessions, 2);
    assert_eq!(a.alerts["denial_burst"], 1);
    assert_eq!(
        a.first_access.unwrap().to_string(),
        "2026-02-01T10:00:00Z",
        "the token counts as access"
    );
    assert_eq!(a.last_access.unwrap().to_string(), "2026-02-03T11:00:02Z");
    let q = &r.partners["quiet"];
    assert!(q.configured && q.requests == 0 && q.last_access.is_none());
    assert!(
        !r.partners.contains_key("<script>"),
        "an unknown client_id is not a partner"
    );
    let u = &r.unattributed;
    assert_eq!(u.refusals, 9);
    assert_eq!(u.by_reason["token_missing"], 6);
    assert_eq!(u.by_reason["unknown_partner"], 1);
    assert_eq!(u.source_ips, 1);
    assert_eq!(
        r.per_day["2026-02-01"],
        DayCount {
            allowed: 1,
            denied: 0
        }
    );
    assert_eq!(
        r.per_day["2026-02-03"],
        DayCount {
            allowed: 2,
            denied: 2
        }
    );
    assert_eq!(r.denials_by_reason()["token_missing"], 6);
}

#[test]
fn html_is_self_contained_escaped_and_fills_empty_days() {
    let mut r = sample();
    r.partners
        .insert("<b>x</b>".into(), PartnerUsage::default());
    let page = html::page(&r);
    assert!(page.contains("&lt;b&gt;x&lt;/b&gt;") && !page.contains("<b>x"));
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(!page.contains("<script") && !page.contains("<link"));
    assert_eq!(page.matches("<svg").count(), 2);
    // 2026-02-02 had no request but is a bar of the chart.
    assert!(page.contains("<title>2026-02-02: 0 allowed, 0 denied</title>"));
    let table = text::table(&r);
    assert!(
        table.contains("no_grant 1") && table.contains("email/tokenize 5"),
        "{table}"
    );
    assert!(
        table.contains("<b>x</b>*"),
        "unconfigured partners are marked"
    );
}

#[test]
fn control_characters_never_reach_the_terminal() {
    assert_eq!(text::clean("a\u{1b}[2Jb\n"), "a?[2Jb?");
}
