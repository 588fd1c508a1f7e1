//! Format-aware scanning: CSV columns and headers, JSON paths and keys, sniffing, unscannable
//! bodies, each pushed whole and split at every point.

use bytes::Bytes;
use serde_json::Value;

use super::super::*;
use crate::dlp::format::{FieldRule, FormatHint, OnUnscannable};
use crate::dlp::fpe::{FpeKey, detokenize};
use crate::dlp::tests::{Rng, random_cuts};
use crate::dlp::{Pack, Profile};

fn engine(profile: Profile) -> Arc<Engine> {
    Arc::new(Engine::compile(&Pack::builtin(), &profile).unwrap())
}

fn redact(entity: &str) -> String {
    format!("[REDACTED:{entity}]")
}

/// Output, findings and summary of `data` in pieces ending at `cuts`, as an object body.
fn scan(
    engine: &Arc<Engine>,
    data: &[u8],
    cuts: &[usize],
    format: Option<Format>,
) -> (Vec<u8>, Vec<(u64, u64, String)>, Summary) {
    let hint = FormatHint {
        forced: format,
        ..FormatHint::default()
    };
    let mut s = engine.scanner_for(ScanMode::Transform, &hint);
    let (mut out, mut findings, mut at) = (Vec::new(), Vec::new(), 0);
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        s.push(Bytes::copy_from_slice(&data[at..cut]), &mut out);
        findings.extend(s.drain_findings());
        at = cut;
    }
    s.finish(&mut out);
    findings.extend(s.drain_findings());
    let f = findings
        .iter()
        .map(|f| (f.start, f.end, f.detector.to_string()))
        .collect();
    (out.concat(), f, s.summary())
}

/// Scans whole, then checks every 2-way split, 1-byte pieces and random pieces agree.
fn scan_all_splits(
    engine: &Arc<Engine>,
    data: &[u8],
    format: Option<Format>,
) -> (String, Vec<(u64, u64, String)>, Summary) {
    let whole = scan(engine, data, &[], format);
    for cut in 0..=data.len() {
        let split = scan(engine, data, &[cut], format);
        assert_eq!((&split.0, &split.1), (&whole.0, &whole.1), "split at {cut}");
    }
    let ones: Vec<usize> = (1..data.len()).collect();
    let split = scan(engine, data, &ones, format);
    assert_eq!((&split.0, &split.1), (&whole.0, &whole.1), "1-byte pieces");
    let mut rng = Rng(7);
    for _ in 0..20 {
        let cuts = random_cuts(&mut rng, data.len(), 64);
        let split = scan(engine, data, &cuts, format);
        assert_eq!((&split.0, &split.1), (&whole.0, &whole.1), "cuts {cuts:?}");
    }
    (String::from_utf8(whole.0).unwrap(), whole.1, whole.2)
}

#[test]
fn csv_header_names_are_context_for_their_column_only() {
    let e = engine(Profile::uniform("r", Action::Redact, None));
    let data = "ssn,first_name,last_name,order_ref\n\
                536228845,ann,smith,536228846\n\
                \"536228847\",bob,jones,536228848\n";
    let (out, found, summary) = scan_all_splits(&e, data.as_bytes(), Some(Format::Csv));
    assert_eq!(
        out,
        format!(
            "ssn,first_name,last_name,order_ref\n{r},ann,smith,536228846\n\"{r}\",bob,jones,536228848\n",
            r = redact("US_SSN")
        )
    );
    assert_eq!(found.len(), 2);
    assert_eq!(summary.format, Some(Format::Csv));
    // As text, the header is too far away: nothing is found.
    let (out, ..) = scan(&e, data.as_bytes(), &[], Some(Format::Text));
    assert_eq!(out, data.as_bytes());
}

#[test]
fn csv_column_rules_cover_whole_cells_and_beat_detectors() {
    let profile = Profile::uniform("r", Action::Redact, None)
        .with_field_rule(FieldRule::column(
            " Notes ",
            Action::Mask {
                with: '#',
                keep_last: 0,
            },
        ))
        .with_field_rule(FieldRule::column("id", Action::Redact).with_entity("CUSTOMER_ID"));
    let e = engine(profile);
    let data = "ID,notes,email\n\
                17,\"call me, maybe: ann@example.com\",bob@example.com\n\
                18,,\"x\"\"y\"\n";
    let (out, found, summary) = scan_all_splits(&e, data.as_bytes(), Some(Format::Csv));
    assert_eq!(
        out,
        format!(
            "ID,notes,email\n{id},\"#### ##, #####: ###@#######.###\",{mail}\n{id},,\"x\"\"y\"\n",
            id = redact("CUSTOMER_ID"),
            mail = redact("EMAIL_ADDRESS")
        )
    );
    let detectors: Vec<&str> = found.iter().map(|f| f.2.as_str()).collect();
    assert_eq!(
        detectors,
        vec!["column:id", "column: Notes ", "email", "column:id"]
    );
    assert_eq!(summary.total(), 4);
}

#[test]
fn findings_never_span_two_cells() {
    let pack = Pack::from_sources([(
        "t.toml".to_string(),
        r#"
[[detector]]
id = "pair"
entity = "PAIR"
regex = '\b\d{3}[,\t ]\d{3}\b'
max_len = 7
examples = [{ text = "123 456", match = "123 456" }]
"#
        .to_string(),
    )])
    .unwrap();
    let e = Arc::new(Engine::compile(&pack, &Profile::uniform("r", Action::Redact, None)).unwrap());
    let data = b"a,b\n123,456\n\"123 456\",x\n";
    let (out, ..) = scan_all_splits(&e, data, Some(Format::Csv));
    assert_eq!(out, "a,b\n123,456\n\"[REDACTED:PAIR]\",x\n");
    let (text, ..) = scan(&e, data, &[], Some(Format::Text));
    assert_eq!(text, b"a,b\n[REDACTED:PAIR]\n\"[REDACTED:PAIR]\",x\n");
    let tsv = b"a\tb\n123\t456\n";
    let (out, ..) = scan_all_splits(&e, tsv, Some(Format::Tsv));
    assert_eq!(out.as_bytes(), tsv);
}

#[test]
fn json_path_rules_keys_as_context_and_valid_output() {
    let profile = Profile::default_masking()
        .with_field_rule(FieldRule::path("customer.name", Action::Redact))
        .with_field_rule(FieldRule::path(
            "$.items[*].note",
            Action::Mask {
                with: '*',
                keep_last: 0,
            },
        ));
    let e = engine(profile);
    let pad = " ".repeat(30);
    let data = format!(
        r#"{{"customer": {{"name": "Ann \"A\" Smith", "ssn": "{pad}536228845", "age": 41}},
 "items": [{{"note": "a\nb\u00e9", "card": 4111111111111111}}, {{"note": 12345}}],
 "ssn_text": "x 536228845", "id": 536228845}}"#
    );
    let (out, _, summary) = scan_all_splits(&e, data.as_bytes(), Some(Format::Json));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["customer"]["name"], "[REDACTED:FIELD]");
    assert_eq!(v["customer"]["ssn"], format!("{pad}*********"));
    assert_eq!(v["customer"]["age"], 41);
    assert_eq!(v["items"][0]["note"], "**********");
    assert_eq!(v["items"][0]["card"], "************1111");
    assert_eq!(v["items"][1]["note"], "*****");
    // The key `ssn_text` gives context ("ssn" stands alone before `_`); `id` does not.
    assert_eq!(v["ssn_text"], "x *********");
    assert_eq!(v["id"], 536228845);
    assert_eq!(summary.syntax_errors, 0);
    assert!(
        !e.preserves_length(Format::Csv),
        "redact changes the length"
    );
    let masking = engine(Profile::default_masking());
    assert!(masking.preserves_length(Format::Csv));
    assert!(
        !masking.preserves_length(Format::Json),
        "a masked number gains quotes"
    );
}

#[test]
fn json_numbers_match_whole_and_escapes_are_never_cut() {
    let e = engine(Profile::default_masking());
    // A card inside a longer number is not a card; a whole one is.
    let data =
        br#"[41111111111111110, 4111111111111111, "\nann@example.com", "\u0034111111111111111"]"#;
    let (out, found, _) = scan_all_splits(&e, data, Some(Format::Json));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0], 41111111111111110u64);
    assert_eq!(v[1], "************1111");
    assert_eq!(v[2], "\n***@*******.***");
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn ndjson_lines_recover_from_syntax_errors() {
    let profile =
        Profile::default_masking().with_field_rule(FieldRule::path("secret", Action::Redact));
    let e = engine(profile);
    let data = b"{\"secret\": \"a\"}\n{\"secret\": oops \"b\"}\n{\"secret\": \"c\"}\n";
    let (out, _, summary) = scan_all_splits(&e, data, Some(Format::Ndjson));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], r#"{"secret": "[REDACTED:FIELD]"}"#);
    assert_eq!(lines[1], r#"{"secret": oops "b"}"#);
    assert_eq!(lines[2], r#"{"secret": "[REDACTED:FIELD]"}"#);
    assert_eq!(summary.syntax_errors, 1);
}

#[test]
fn long_cells_under_a_rule_are_transformed_in_pieces() {
    let profile =
        Profile::default_masking().with_field_rule(FieldRule::column("blob", Action::Redact));
    let e = engine(profile);
    let horizon = e.horizon;
    let long = "x".repeat(2 * horizon + 10);
    let data = format!("id,blob\n1,{long}\n2,short\n");
    let (out, found, _) = scan(&e, data.as_bytes(), &[], Some(Format::Csv));
    let r = redact("FIELD");
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        format!("id,blob\n1,{r}{r}{r}\n2,{r}\n")
    );
    assert_eq!(found.len(), 4);
    let mut rng = Rng(3);
    for _ in 0..10 {
        let cuts = random_cuts(&mut rng, data.len(), 3000);
        let split = scan(&e, data.as_bytes(), &cuts, Some(Format::Csv));
        assert_eq!((&split.0, &split.1), (&out, &found), "cuts {cuts:?}");
    }
}

#[test]
fn formats_are_sniffed_when_nothing_declares_one() {
    let e = engine(Profile::default_masking());
    let csv = "name,ssn,x,y,z,w,v\nann,536228845,1,2,3,4,5\n";
    let (out, _, summary) = scan(&e, csv.as_bytes(), &[], None);
    assert_eq!(summary.format, Some(Format::Csv));
    assert!(String::from_utf8(out).unwrap().contains("ann,*********,"));
    let hint = FormatHint {
        content_type: Some("application/x-ndjson"),
        name: Some("a.csv"),
        forced: None,
    };
    let mut s = e.scanner_for(ScanMode::Detect, &hint);
    let mut out = Vec::new();
    s.push(Bytes::from_static(b"{\"a\": 1}\n"), &mut out);
    s.finish(&mut out);
    assert_eq!(s.summary().format, Some(Format::Ndjson));
}

#[test]
fn unscannable_bodies_block_by_default_or_pass_unchanged() {
    let gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00card 4111111111111111".repeat(500);
    let block = engine(Profile::default_masking());
    let (out, found, summary) = scan(&block, &gz, &[100, 5000], None);
    assert!(out.is_empty());
    assert!(found.is_empty());
    assert!(summary.blocked);
    assert_eq!(
        summary.unscannable,
        Some(crate::dlp::format::Unscannable::Compressed("gzip"))
    );
    assert_eq!(summary.format, None);
    let pass = engine(Profile::default_masking().with_on_unscannable(OnUnscannable::Pass));
    let (out, found, summary) = scan(&pass, &gz, &[100, 5000], None);
    assert_eq!(out, gz);
    assert!(found.is_empty());
    assert!(!summary.blocked);
    assert_eq!(summary.bytes_out, gz.len() as u64);
    // A NUL byte anywhere in the first bytes: binary, whatever the declared type.
    let mut bin = b"name,ssn\n".to_vec();
    bin.extend_from_slice(b"ann,\x00\x01\x02\n");
    let (_, _, summary) = scan(&block, &bin, &[], Some(Format::Csv));
    assert!(summary.blocked);
    // Plain text scanners do not sniff.
    let (out, _, _) = transform_text(&block, &gz[..20]);
    assert_eq!(out.len(), 20);
}

fn transform_text(e: &Arc<Engine>, data: &[u8]) -> (Vec<u8>, Vec<Finding>, Summary) {
    super::super::transform(e, data)
}

#[test]
fn tokenize_fpe_keeps_the_format_and_the_data_owner_reverses_it() {
    let key = FpeKey::new([9; 32]);
    let mut profile = Profile::default_masking().with_fpe(key.clone(), "partner-a");
    profile
        .actions
        .insert("CREDIT_CARD".into(), Action::TokenizeFpe);
    profile.actions.insert("US_SSN".into(), Action::TokenizeFpe);
    let profile =
        profile.with_field_rule(FieldRule::column("pin", Action::TokenizeFpe).with_entity("PIN"));
    let e = engine(profile);
    let data = "name,card,ssn,pin\nann,4111-1111-1111-1111,536-22-8845,1234\n";
    let (out, found, summary) = scan_all_splits(&e, data.as_bytes(), Some(Format::Csv));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[0], "ann");
    assert_eq!(row[1].len(), 19);
    assert_ne!(row[1], "4111-1111-1111-1111");
    assert_eq!(
        detokenize(&key, "partner-a", row[1].as_bytes()).unwrap(),
        b"4111-1111-1111-1111"
    );
    assert_eq!(
        detokenize(&key, "partner-a", row[2].as_bytes()).unwrap(),
        b"536-22-8845"
    );
    // 4 digits are below FF1's minimum domain: masked, and counted.
    assert_eq!(row[3], "****");
    assert_eq!(summary.fpe_fallbacks, 1);
    assert_eq!(found.len(), 3);
    assert!(e.preserves_length(Format::Csv));
}
