//! Streaming behaviour: overlap resolution, actions, carry-over, bounded memory.

use std::collections::BTreeMap;
use std::time::Instant;

use super::*;
use crate::dlp::tests::{Rng, random_cuts, run_split};
use crate::dlp::{Pack, Profile, TokenKey};

fn engine(profile: Profile) -> Arc<Engine> {
    Arc::new(Engine::compile(&Pack::builtin(), &profile).unwrap())
}

fn custom(toml: &str, profile: &Profile) -> Arc<Engine> {
    let pack = Pack::from_sources([("t.toml".to_string(), toml.to_string())]).unwrap();
    Arc::new(Engine::compile(&pack, profile).unwrap())
}

fn text_out(engine: &Arc<Engine>, s: &str) -> String {
    String::from_utf8(transform(engine, s.as_bytes()).0).unwrap()
}

fn spans(findings: &[Finding]) -> Vec<(u64, u64, &str)> {
    findings
        .iter()
        .map(|f| (f.start, f.end, &*f.detector))
        .collect()
}

const OVERLAPS: &str = r#"
[[detector]]
id = "short_first"
entity = "A"
regex = 'x\d{4}'
max_len = 5
examples = [{ text = "x1234", match = "x1234" }]

[[detector]]
id = "long_later"
entity = "B"
regex = '\d{3}y\d{4}'
max_len = 8
examples = [{ text = "123y4567", match = "123y4567" }]

[[detector]]
id = "same_span_low"
entity = "C"
regex = 'k\d{3}'
max_len = 4
examples = [{ text = "k123", match = "k123" }]

[[detector]]
id = "same_span_high"
entity = "D"
regex = 'k\d{3}'
priority = 1
max_len = 4
examples = [{ text = "k123", match = "k123" }]

[[detector]]
id = "longer_same_start"
entity = "E"
regex = 'k\d{3}z{1,2}'
max_len = 6
examples = [{ text = "k123zz", match = "k123zz" }]
"#;

#[test]
fn overlaps_resolve_by_earliest_start_then_longest_then_priority() {
    let e = custom(OVERLAPS, &Profile::uniform("m", Action::Redact, None));
    // x1234 starts first; 234y5678 overlaps it and loses although longer.
    let f = transform(&e, b"x1234y5678 ").1;
    assert_eq!(spans(&f), [(0, 5, "short_first")]);
    // Same start: the longer wins.
    let f = transform(&e, b"k123zz").1;
    assert_eq!(spans(&f), [(0, 6, "longer_same_start")]);
    // Same span: the higher priority wins; on equal priority, pack order.
    let f = transform(&e, b"k123 ").1;
    assert_eq!(spans(&f), [(0, 4, "same_span_high")]);
    // Non-overlapping findings all stay.
    let f = transform(&e, b"x1234 123y4567 k123").1;
    assert_eq!(
        spans(&f),
        [
            (0, 5, "short_first"),
            (6, 14, "long_later"),
            (15, 19, "same_span_high")
        ]
    );
}

#[test]
fn specific_tokens_beat_generic_secret_assignments_on_the_same_value() {
    let e = engine(Profile::default_masking());
    let f = transform(&e, b"api_key=sk_live_TAwR4y9ojfljoQoaF1Llqsaj\n").1;
    assert_eq!(spans(&f), [(8, 40, "stripe_key")]);
}

#[test]
fn each_action_transforms_its_entity() {
    let key = TokenKey::derive(b"master", "partner-a");
    let mut actions = BTreeMap::new();
    actions.insert("EMAIL_ADDRESS".to_string(), Action::Redact);
    actions.insert("US_SSN".to_string(), Action::Tokenize);
    actions.insert("IP_ADDRESS".to_string(), Action::Hash);
    actions.insert(
        "CREDIT_CARD".to_string(),
        Action::Mask {
            with: 'X',
            keep_last: 4,
        },
    );
    actions.insert("IBAN".to_string(), Action::Allow);
    let profile = Profile {
        name: "mixed".into(),
        detectors: None,
        actions,
        default_action: Action::Block,
        key: Some(key),
        ..Profile::default()
    };
    let e = engine(profile);
    let input = "a ann@example.org b 536-22-8845 c 10.0.0.1 d 4111-1111-1111-1111 e DE89370400440532013000 f";
    let (out, findings, summary) = transform(&e, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    let parts: Vec<&str> = out.split(' ').collect();
    assert_eq!(parts[1], "[REDACTED:EMAIL_ADDRESS]");
    assert!(
        parts[3].starts_with("tok_") && parts[3].len() == 20,
        "{out}"
    );
    assert_eq!(parts[5].len(), 64, "{out}");
    assert_eq!(parts[7], "XXXX-XXXX-XXXX-1111");
    assert_eq!(parts[9], "DE89370400440532013000");
    assert!(!summary.blocked);
    let actions: Vec<&str> = findings.iter().map(|f| f.action.name()).collect();
    assert_eq!(actions, ["redact", "tokenize", "hash", "mask", "allow"]);
    assert_eq!(summary.total(), 5);
    assert_eq!(summary.bytes_in, input.len() as u64);
    assert_eq!(summary.bytes_out, out.len() as u64);
    // Same value, same token; the default action `block` flags the stream and redacts.
    let again = text_out(&e, "x 536-22-8845 ghp_4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4i0B3Jr");
    assert_eq!(again.split(' ').nth(1), Some(parts[3]));
    assert!(again.ends_with("[REDACTED:GITHUB_TOKEN]"), "{again}");
    let (_, _, summary) = transform(&e, b"ghp_4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4i0B3Jr");
    assert!(summary.blocked);
}

#[test]
fn profiles_that_do_not_fit_the_pack_fail_with_every_problem() {
    let mut p = Profile::uniform("p", Action::Tokenize, None);
    p.detectors = Some(vec!["email".into(), "nope".into()]);
    p.actions.insert("SSN".into(), Action::Redact);
    let e = Engine::compile(&Pack::builtin(), &p).unwrap_err();
    assert_eq!(e.0.len(), 3, "{e}");
    p.detectors = Some(vec!["email".into()]);
    p.actions.clear();
    p.key = Some(TokenKey::new([7; 32]));
    let e = engine(p);
    assert_eq!(e.detectors().count(), 1);
    assert_eq!(
        transform(&e, b"536-22-8845").1.len(),
        0,
        "only the selected detector runs"
    );
}

/// Context on one side of a chunk boundary, the value on the other, at every cut.
#[test]
fn context_words_across_chunk_boundaries_are_seen_exactly_once() {
    let e = engine(Profile::default_masking());
    let pad = "lorem ipsum dolor sit amet\n".repeat(e.carry_over() / 27 + 2);
    for (middle, value) in [
        ("ssn:\n536228845 ", "536228845"),
        ("536228845 is my ssn\n", "536228845"),
        ("routing number .. 021000021 ", "021000021"),
        (
            "aws_secret_access_key:\n PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA+\n",
            "PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA+",
        ),
    ] {
        let data = format!("{pad}{middle}{pad}{middle}{pad}");
        let whole = run_split(&e, data.as_bytes(), &[]);
        let values: Vec<&str> = whole
            .1
            .iter()
            .map(|f| &data[f.start as usize..f.end as usize])
            .collect();
        assert_eq!(values, [value, value], "{middle:?}");
        let first = pad.len();
        let second = 2 * pad.len() + middle.len();
        for base in [
            first,
            second,
            first + e.carry_over(),
            second + e.carry_over(),
        ] {
            for cut in base.saturating_sub(4)..base + middle.len() + 4 {
                let got = run_split(&e, data.as_bytes(), &[cut.min(data.len())]);
                assert_eq!(got, whole, "{middle:?} cut at {cut}");
            }
        }
    }
    // Out of the window: no context, no finding.
    let far = format!("ssn{}536228845", " ".repeat(60));
    assert!(transform(&e, far.as_bytes()).1.is_empty());
}

#[test]
fn random_chunkings_of_a_mixed_stream_give_identical_output_and_findings() {
    let e = engine(Profile::default_masking());
    let mut data = String::new();
    for i in 0..400 {
        data.push_str(&format!(
            "{i},ann{i}@example.com,4111 1111 1111 1111,+1 (415) 555-{:04},10.0.{}.{},SSN: 536-22-8845\n",
            i % 10000,
            i % 256,
            (i * 7) % 256
        ));
        if i % 50 == 0 {
            data.push_str("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----\n");
        }
    }
    let whole = run_split(&e, data.as_bytes(), &[]);
    assert!(whole.1.len() > 2000, "{}", whole.1.len());
    let mut rng = Rng(42);
    for max_piece in [1, 7, 100, 5000, 70_000] {
        let cuts = random_cuts(&mut rng, data.len(), max_piece);
        assert!(
            run_split(&e, data.as_bytes(), &cuts) == whole,
            "pieces up to {max_piece}"
        );
    }
}

#[test]
fn memory_stays_bounded_by_the_carry_over_and_one_chunk() {
    let e = engine(Profile::default_masking());
    let line =
        "2026-01-05T10:00:00Z GET /a?mail=ann@example.com from 10.1.2.3 card 4111111111111111\n";
    let chunk = Bytes::from(line.repeat(65536 / line.len()));
    let mut s = e.scanner(ScanMode::Transform);
    s.keep_findings(false);
    let mut out = Vec::new();
    let mut max_held = 0;
    for _ in 0..200 {
        s.push(chunk.clone(), &mut out);
        out.clear();
        let held: usize = s.input.iter().map(Bytes::len).sum();
        max_held = max_held.max(s.buf.len()).max(held);
        assert!(s.hits.len() < 10_000 && s.pending.len() < 10_000);
    }
    assert!(max_held <= 2 * (e.carry_over() + chunk.len()), "{max_held}");
    assert!(s.summary().total() >= 199 * 3 * (65536 / line.len()) as u64);
}

#[test]
fn hostile_inputs_scan_in_linear_time() {
    let e = engine(Profile::default_masking());
    for unit in [
        "eyJ",
        "@",
        "+1",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "token=",
        "1.",
        "::",
        "4",
        "a",
    ] {
        let data = unit.repeat(256 * 1024 / unit.len());
        let t = Instant::now();
        let (out, _, _) = transform(&e, data.as_bytes());
        assert_eq!(out.len(), data.len());
        assert!(
            t.elapsed().as_secs() < 20,
            "{unit:?} took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn output_holds_back_only_the_carry_over() {
    let e = engine(Profile::default_masking());
    let mut s = e.scanner(ScanMode::Transform);
    let mut out = Vec::new();
    let data = Bytes::from(vec![b'x'; 100_000]);
    s.push(data, &mut out);
    let emitted: usize = out.iter().map(Bytes::len).sum();
    assert_eq!(emitted, 100_000 - e.engine_horizon());
    assert!(
        out.iter().all(|b| b.len() >= ZERO_COPY_MIN),
        "long clean runs pass through uncopied"
    );
    s.finish(&mut out);
    assert_eq!(out.iter().map(Bytes::len).sum::<usize>(), 100_000);
}

impl Engine {
    fn engine_horizon(&self) -> usize {
        self.horizon
    }
}

#[test]
fn without_a_set_dfa_keyword_free_detectors_search_everywhere_with_the_same_result() {
    let pack = Pack::builtin();
    let profile = Profile::default_masking();
    let slots = pack
        .detectors
        .iter()
        .map(|d| (d.clone(), profile.action_for(&d.entity)))
        .collect();
    let fallback =
        crate::dlp::engine::build(slots, Default::default(), "fallback", "", |_| None).unwrap();
    assert!(fallback.set.is_none());
    let fallback = Arc::new(fallback);
    let normal = engine(profile);
    let mut data = String::new();
    for i in 0..300 {
        data.push_str(&format!(
            "{i} 4111 1111 1111 1111 536-22-8845 GB82 WEST 1234 5698 7654 32 10.0.{}.1 x\n",
            i % 256
        ));
    }
    let mut rng = Rng(7);
    let cuts = random_cuts(&mut rng, data.len(), 5000);
    let expected = run_split(&normal, data.as_bytes(), &[]);
    assert_eq!(expected.1.len(), 4 * 300);
    assert!(run_split(&fallback, data.as_bytes(), &cuts) == expected);
}

#[test]
fn the_nearest_context_word_decides_between_detectors_of_the_same_span() {
    let e = engine(Profile::default_masking());
    // 243099250 is a valid routing number and a valid SSN; both words are within both windows.
    let text = "routing number 243099250, ssn 536228845\n";
    let f = transform(&e, text.as_bytes()).1;
    assert_eq!(
        spans(&f),
        [(15, 24, "aba_routing"), (30, 39, "us_ssn_bare")]
    );
    let text = "ssn 243099250, routing number 021000021\n";
    let f = transform(&e, text.as_bytes()).1;
    assert_eq!(spans(&f), [(4, 13, "us_ssn_bare"), (30, 39, "aba_routing")]);
}
