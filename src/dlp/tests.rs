//! The data-driven test: every example of every file in `dlp-patterns/`, through the full
//! default engine, whole and through the stream path split at every byte and in random chunks.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::*;

/// A small deterministic generator (splitmix64) for random splits.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Output and findings of `data` pushed in pieces ending at each of `cuts`.
pub(crate) fn run_split(
    engine: &Arc<Engine>,
    data: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, Vec<Finding>) {
    let mut s = engine.scanner(ScanMode::Transform);
    let mut out = Vec::new();
    let mut findings = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        s.push(Bytes::copy_from_slice(&data[at..cut]), &mut out);
        findings.extend(s.drain_findings());
        at = cut;
    }
    s.finish(&mut out);
    findings.extend(s.drain_findings());
    (out.concat(), findings)
}

/// Random cut points: pieces of 1 to `max_piece` bytes.
pub(crate) fn random_cuts(rng: &mut Rng, len: usize, max_piece: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut at = 0;
    loop {
        at += 1 + rng.below(max_piece.max(1));
        if at >= len {
            return cuts;
        }
        cuts.push(at);
    }
}

fn dir_pack() -> Pack {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dlp-patterns");
    Pack::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn builtin_pack_is_every_file_of_the_dlp_patterns_directory() {
    let dir = dir_pack();
    assert_eq!(Pack::builtin().version(), dir.version());
    assert!(dir.detectors.len() >= 20);
    let entities: Vec<String> = dir.entities().iter().map(|e| e.to_string()).collect();
    for e in [
        "CREDIT_CARD",
        "US_SSN",
        "IBAN",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "IP_ADDRESS",
        "DATE_OF_BIRTH",
        "US_PASSPORT",
        "ABA_ROUTING_NUMBER",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PRIVATE_KEY",
        "JWT",
        "GITHUB_TOKEN",
        "SLACK_TOKEN",
        "STRIPE_KEY",
        "GENERIC_SECRET",
    ] {
        assert!(entities.iter().any(|x| x == e), "default pack lacks {e}");
    }
}

/// One example: the text, and the value its detector must give (`None`: must not give any).
struct Case<'a> {
    det: &'a Detector,
    text: &'a str,
    expect: Option<&'a str>,
    line: usize,
}

fn check(
    engine: &Arc<Engine>,
    case: &Case<'_>,
    data: &[u8],
    offset: usize,
) -> (Vec<u8>, Vec<Finding>) {
    let (out, findings) = run_split(engine, data, &[]);
    let of_det: Vec<&str> = findings
        .iter()
        .filter(|f| *f.detector == *case.det.id)
        .map(|f| std::str::from_utf8(&data[f.start as usize..f.end as usize]).unwrap_or("<bytes>"))
        .collect();
    let at = format!("{}:{} ({})", case.det.source, case.line, case.det.id);
    match case.expect {
        Some(expect) => {
            assert_eq!(of_det, vec![expect], "{at}: example {:?}", case.text);
            let f = findings
                .iter()
                .find(|f| *f.detector == *case.det.id)
                .unwrap();
            let start = offset + case.text.find(expect).unwrap();
            assert_eq!(f.start as usize, start, "{at}: offset");
        }
        None => assert!(
            of_det.is_empty(),
            "{at}: negative example {:?} gives {of_det:?}",
            case.text
        ),
    }
    (out, findings)
}

#[test]
fn every_example_of_every_detector_file_whole_and_split_at_every_point() {
    let pack = dir_pack();
    let engine = Arc::new(Engine::compile(&pack, &Profile::default_masking()).unwrap());
    let carry = engine.carry_over();
    let mut rng = Rng(0x5eed);
    let mut cases = Vec::new();
    for det in &pack.detectors {
        for ex in &det.examples {
            cases.push(Case {
                det,
                text: &ex.text,
                expect: Some(&ex.expect),
                line: ex.line,
            });
        }
        for ex in &det.negative_examples {
            cases.push(Case {
                det,
                text: &ex.text,
                expect: None,
                line: ex.line,
            });
        }
    }
    // Filler with no matches and no words, so the example decides alone.
    let filler = |n: usize| "lorem ipsum dolor sit amet\n".repeat(n / 27 + 1);
    for case in &cases {
        let text = case.text.as_bytes();
        let at = format!("{}:{} ({})", case.det.source, case.line, case.det.id);
        // Alone: every 2-way split, 1-byte pieces, random pieces.
        let whole = check(&engine, case, text, 0);
        for cut in 0..=text.len() {
            assert_eq!(
                run_split(&engine, text, &[cut]),
                whole,
                "{at}: split at {cut}"
            );
        }
        let ones: Vec<usize> = (1..text.len()).collect();
        assert_eq!(
            run_split(&engine, text, &ones),
            whole,
            "{at}: 1-byte pieces"
        );
        for _ in 0..20 {
            let cuts = random_cuts(&mut rng, text.len(), 8);
            assert_eq!(
                run_split(&engine, text, &cuts),
                whole,
                "{at}: cuts {cuts:?}"
            );
        }
        // Inside a stream longer than the carry-over, so decisions happen mid-stream: cuts
        // where a frontier (global, keyword-free set, this detector) crosses the example, cuts
        // inside it, 1-byte pieces across each of those crossings, random pieces.
        let (pre, post) = (filler(carry + 64), format!("\n{}", filler(carry + 64)));
        let data = [pre.as_bytes(), text, post.as_bytes()].concat();
        let whole = check(&engine, case, &data, pre.len());
        let (start, end) = (pre.len(), pre.len() + text.len());
        let edges = [
            start - 1,
            start,
            start + 1,
            (start + end) / 2,
            end - 1,
            end,
            end + 1,
        ];
        let horizons = [0, engine.horizon, case.det.horizon()];
        for cut in horizons
            .iter()
            .flat_map(|h| edges.iter().map(move |e| e + h))
        {
            let cut = cut.min(data.len());
            assert_eq!(
                run_split(&engine, &data, &[cut]),
                whole,
                "{at}: padded split at {cut}"
            );
        }
        let mut ones: Vec<usize> = horizons
            .iter()
            .flat_map(|h| start - 8 + h..end + 8 + h)
            .filter(|&c| c < data.len())
            .collect();
        ones.sort_unstable();
        ones.dedup();
        assert_eq!(
            run_split(&engine, &data, &ones),
            whole,
            "{at}: padded 1-byte pieces"
        );
        for _ in 0..5 {
            let cuts = random_cuts(&mut rng, data.len(), 3000);
            assert_eq!(
                run_split(&engine, &data, &cuts),
                whole,
                "{at}: padded cuts {cuts:?}"
            );
        }
    }
}
