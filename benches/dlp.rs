//! DLP engine throughput with the default pack on a generated mixed corpus (CSV, NDJSON, access
//! logs, prose; about 4 MiB, deterministic, one finding every ~90 bytes), pushed in 64 KiB
//! chunks as the gateway does: scan only, scan and mask, and scan with the credential
//! detectors only (few findings: the cost of the keyword and set passes).
//!
//! The same sensitive mix diluted in clean lines (logs and events without IPs or people, and
//! prose), down to no findings at all: throughput against the density of findings.
//!
//! The floor under all of these: the passes over every byte that open candidate windows
//! (`dlp-passes`, on the clean text): the keyword and context-word automaton alone, the
//! keyword-free detectors' DFA alone, both as the engine runs them, and one lazy DFA over both
//! (the alternative a single pass would need: a fully built one does not fit in memory).
//!
//! Also the CSV part alone, parsed as CSV (header context, cells) and as text: the cost of
//! the format layer.
//!
//! `cargo bench --bench dlp -- --warm-up-time 1 --measurement-time 3`

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatehouse::dlp::{Engine, Format, FormatHint, Pack, Profile, ScanMode};

/// splitmix64: the same corpus on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| char::from(A[self.below(A.len() as u64) as usize]))
            .collect()
    }
}

const FIRST: &[&str] = &[
    "ann", "bob", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo",
];
const LAST: &[&str] = &[
    "smith", "garcia", "nguyen", "okafor", "muller", "rossi", "tanaka", "khan",
];
const WORDS: &[&str] = &[
    "the",
    "data",
    "partner",
    "report",
    "quarterly",
    "revenue",
    "shipment",
    "was",
    "delivered",
    "to",
    "warehouse",
    "and",
    "invoice",
    "approved",
    "by",
    "finance",
    "team",
    "after",
    "review",
    "of",
    "contract",
    "terms",
    "with",
    "customer",
    "support",
    "ticket",
    "closed",
    "on",
    "time",
];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/login",
    "/static/app.js",
    "/shares/demo/data.csv",
    "/health",
];

/// A card number that passes Luhn (a realistic share of the CSV rows carry one).
fn card(rng: &mut Rng) -> String {
    let mut d: Vec<u8> = std::iter::once(4)
        .chain((0..14).map(|_| rng.below(10) as u8))
        .collect();
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 0 {
                if x * 2 > 9 { x * 2 - 9 } else { x * 2 }
            } else {
                x
            }
        })
        .sum();
    d.push(((10 - sum % 10) % 10) as u8);
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

fn csv(rng: &mut Rng, out: &mut String) {
    let (f, l) = (rng.pick(FIRST), rng.pick(LAST));
    let _ = writeln!(
        out,
        "{},{f} {l},{f}.{l}@example.com,+1 415 555 {},{},{}-{}-{},{}.{:02},2025-{:02}-{:02}",
        rng.digits(7),
        rng.digits(4),
        card(rng),
        100 + rng.below(600),
        10 + rng.below(89),
        1000 + rng.below(9000),
        rng.below(10_000),
        rng.below(100),
        1 + rng.below(12),
        1 + rng.below(28)
    );
}

fn ndjson(rng: &mut Rng, out: &mut String) {
    let token = if rng.below(20) == 0 {
        format!(",\"auth\":\"token={}\"", rng.alnum(32))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{{\"ts\":\"2025-11-{:02}T{:02}:{:02}:{:02}.{}Z\",\"event\":\"{}\",\"user_id\":{},\"ip\":\"10.{}.{}.{}\",\"amount\":{}.{:02},\"session\":\"{}-{}-{}\"{token}}}",
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.digits(3),
        rng.pick(&["view", "download", "list", "share"]),
        rng.digits(8),
        rng.below(256),
        rng.below(256),
        rng.below(256),
        rng.below(5000),
        rng.below(100),
        rng.alnum(8),
        rng.alnum(4),
        rng.alnum(12)
    );
}

fn log(rng: &mut Rng, out: &mut String) {
    let _ = writeln!(
        out,
        "{}.{}.{}.{} - - [05/Nov/2025:{:02}:{:02}:{:02} +0000] \"GET {}?page={} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" rt={}.{:03} req={:08x}-{:04x}",
        1 + rng.below(223),
        rng.below(256),
        rng.below(256),
        rng.below(256),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.pick(PATHS),
        rng.below(50),
        rng.pick(&["200", "200", "304", "404", "500"]),
        rng.below(100_000),
        rng.below(3),
        rng.below(1000),
        rng.next() as u32,
        rng.next() as u16
    );
}

fn prose(rng: &mut Rng, out: &mut String) {
    let n = 12 + rng.below(20);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        if rng.below(15) == 0 {
            let _ = write!(out, "{}", rng.below(100_000));
        } else {
            out.push_str(rng.pick(WORDS));
        }
    }
    out.push_str(".\n");
}

/// About `size` bytes: blocks of 40 lines of each kind, in turn.
fn corpus(size: usize) -> Vec<u8> {
    let mut rng = Rng(2026);
    let mut out = String::with_capacity(size + 4096);
    let kinds: [fn(&mut Rng, &mut String); 4] = [csv, ndjson, log, prose];
    let mut k = 0;
    while out.len() < size {
        for _ in 0..40 {
            kinds[k % 4](&mut rng, &mut out);
        }
        k += 1;
    }
    out.into_bytes()
}

/// NDJSON events and access-log lines with nothing sensitive (no IPs, tokens or people), and
/// prose: what most of a data lake holds.
fn clean(rng: &mut Rng, out: &mut String) {
    match rng.below(3) {
        0 => {
            let _ = writeln!(
                out,
                "{{\"ts\":\"2025-11-{:02}T{:02}:{:02}:{:02}.{}Z\",\"event\":\"{}\",\"order\":\"ORD-{}\",\"items\":{},\"amount\":{}.{:02},\"region\":\"{}\"}}",
                1 + rng.below(28),
                rng.below(24),
                rng.below(60),
                rng.below(60),
                rng.digits(3),
                rng.pick(&["view", "download", "list", "share"]),
                rng.digits(6),
                1 + rng.below(20),
                rng.below(5000),
                rng.below(100),
                rng.pick(&["eu-west-1", "us-east-1", "ap-south-1"])
            );
        }
        1 => {
            let _ = writeln!(
                out,
                "web-{:02}.internal - - [05/Nov/2025:{:02}:{:02}:{:02} +0000] \"GET {}?page={} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" rt={}.{:03}",
                rng.below(40),
                rng.below(24),
                rng.below(60),
                rng.below(60),
                rng.pick(PATHS),
                rng.below(50),
                rng.pick(&["200", "200", "304", "404", "500"]),
                rng.below(100_000),
                rng.below(3),
                rng.below(1000)
            );
        }
        _ => prose(rng, out),
    }
}

/// About `size` bytes in which one line in `every` comes from [`corpus`]'s sensitive mix and
/// the others are [`clean`] (`every = 0`: clean only).
fn diluted(size: usize, every: u64) -> Vec<u8> {
    let mut rng = Rng(99);
    let mut out = String::with_capacity(size + 4096);
    let kinds: [fn(&mut Rng, &mut String); 4] = [csv, ndjson, log, prose];
    let mut k = 0;
    while out.len() < size {
        if every > 0 && rng.below(every) == 0 {
            kinds[k % 4](&mut rng, &mut out);
            k += 1;
        } else {
            clean(&mut rng, &mut out);
        }
    }
    out.into_bytes()
}

/// `data` in 64 KiB chunks, as the gateway receives an object body.
fn chunked(data: &Bytes) -> Vec<Bytes> {
    (0..data.len())
        .step_by(64 * 1024)
        .map(|i| data.slice(i..(i + 64 * 1024).min(data.len())))
        .collect()
}

/// About `size` bytes of CSV rows under a header.
fn csv_corpus(size: usize) -> Vec<u8> {
    let mut rng = Rng(7);
    let mut out = String::from("id,name,email,phone,card,ssn,amount,date\n");
    while out.len() < size {
        csv(&mut rng, &mut out);
    }
    out.into_bytes()
}

fn scan(engine: &Arc<Engine>, chunks: &[Bytes], mode: ScanMode) -> u64 {
    scan_as(engine, chunks, mode, None)
}

fn scan_as(engine: &Arc<Engine>, chunks: &[Bytes], mode: ScanMode, format: Option<Format>) -> u64 {
    let mut s = match format {
        None => engine.scanner(mode),
        Some(f) => engine.scanner_for(
            mode,
            &FormatHint {
                forced: Some(f),
                ..FormatHint::default()
            },
        ),
    };
    s.keep_findings(false);
    let mut out = Vec::with_capacity(8);
    let mut n = 0;
    for c in chunks {
        s.push(c.clone(), &mut out);
        n += out.drain(..).map(|b| b.len()).sum::<usize>();
    }
    s.finish(&mut out);
    n += out.drain(..).map(|b| b.len()).sum::<usize>();
    black_box(n);
    s.summary().total()
}

/// Words and keyword-free regexes of the pack, as the engine splits them.
fn pass_inputs(pack: &Pack) -> (Vec<String>, Vec<String>) {
    let (mut words, mut set) = (Vec::new(), Vec::new());
    for d in &pack.detectors {
        for w in d.keywords.iter().chain(&d.context) {
            if !words.contains(w) {
                words.push(w.clone());
            }
        }
        if d.keywords.is_empty() && d.context.is_empty() {
            set.push(d.pattern.clone());
        }
    }
    (words, set)
}

fn syntax() -> regex_automata::util::syntax::Config {
    regex_automata::util::syntax::Config::new()
        .unicode(false)
        .utf8(false)
        .multi_line(true)
}

/// Four interleaved lanes over four quarters of `data` (as the engine's lanes): `step` is one
/// DFA transition, `hit` the cheap match-state test. Gives the number of match steps.
fn four_lanes<S: Copy>(
    data: &[u8],
    start: S,
    step: impl Fn(S, u8) -> S,
    hit: impl Fn(S) -> bool,
) -> u64 {
    let q = data.len() / 4;
    let (l0, l1, l2, l3) = (
        &data[..q],
        &data[q..2 * q],
        &data[2 * q..3 * q],
        &data[3 * q..4 * q],
    );
    let (mut s0, mut s1, mut s2, mut s3) = (start, start, start, start);
    let mut n = 0;
    for (((&b0, &b1), &b2), &b3) in l0.iter().zip(l1).zip(l2).zip(l3) {
        s0 = step(s0, b0);
        s1 = step(s1, b1);
        s2 = step(s2, b2);
        s3 = step(s3, b3);
        if hit(s0) | hit(s1) | hit(s2) | hit(s3) {
            n += 1;
        }
    }
    n
}

fn passes(c: &mut Criterion, data: &[u8]) {
    use aho_corasick::automaton::Automaton as _;
    use regex_automata::dfa::{Automaton as _, StartKind, dense};
    use regex_automata::util::start;
    use regex_automata::{Anchored, MatchKind, hybrid, nfa::thompson};
    let (words, set) = pass_inputs(&Pack::builtin());
    let ac = aho_corasick::dfa::DFA::builder()
        .ascii_case_insensitive(true)
        .match_kind(aho_corasick::MatchKind::Standard)
        .start_kind(aho_corasick::StartKind::Unanchored)
        .prefilter(false)
        .build(&words)
        .unwrap();
    let dfa = dense::Builder::new()
        .syntax(syntax())
        .thompson(thompson::Config::new().utf8(false))
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::All)
                .start_kind(StartKind::Unanchored)
                .accelerate(false),
        )
        .build_many(&set)
        .unwrap();
    let mut fused: Vec<String> = set.clone();
    fused.extend(
        words
            .iter()
            .map(|w| format!("(?i){}", regex_syntax::escape(w))),
    );
    let lazy = hybrid::dfa::DFA::builder()
        .syntax(syntax())
        .thompson(thompson::Config::new().utf8(false))
        .configure(
            hybrid::dfa::Config::new()
                .match_kind(MatchKind::All)
                .cache_capacity(8 << 20),
        )
        .build_many(&fused)
        .unwrap();
    let any = aho_corasick::Anchored::No;
    let ac_start = ac.start_state(any).unwrap();
    let words_pass = || {
        four_lanes(
            data,
            ac_start,
            |s, b| ac.next_state(any, s, b),
            |s| ac.is_special(s),
        )
    };
    let set_start = dfa
        .start_state(&start::Config::new().anchored(Anchored::No))
        .unwrap();
    let set_pass = || {
        four_lanes(
            data,
            set_start,
            |s, b| dfa.next_state(s, b),
            |s| dfa.is_special_state(s),
        )
    };
    let mut g = c.benchmark_group("dlp-passes");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("words", |b| b.iter(|| black_box(words_pass())));
    g.bench_function("keyword-free-set", |b| b.iter(|| black_box(set_pass())));
    g.bench_function("both", |b| b.iter(|| black_box(words_pass() + set_pass())));
    let cache = std::cell::RefCell::new(lazy.create_cache());
    g.bench_function("one-lazy-dfa", |b| {
        b.iter(|| {
            let mut cache = cache.borrow_mut();
            let start = lazy
                .start_state(&mut cache, &start::Config::new().anchored(Anchored::No))
                .unwrap();
            let cache = std::cell::RefCell::new(&mut *cache);
            black_box(four_lanes(
                data,
                start,
                |s, b| lazy.next_state(&mut cache.borrow_mut(), s, b).unwrap(),
                |s| s.is_tagged(),
            ))
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let data = Bytes::from(corpus(4 << 20));
    let chunks = chunked(&data);
    let engine = Arc::new(Engine::compile(&Pack::builtin(), &Profile::default_masking()).unwrap());
    let found = scan(&engine, &chunks, ScanMode::Detect);
    eprintln!(
        "corpus: {} bytes, {found} findings with the default pack",
        data.len()
    );
    let mut g = c.benchmark_group("dlp");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("scan", |b| {
        b.iter(|| scan(&engine, &chunks, ScanMode::Detect))
    });
    g.bench_function("scan+mask", |b| {
        b.iter(|| scan(&engine, &chunks, ScanMode::Transform))
    });
    // The credential detectors alone: findings are rare, so this is the cost of the passes.
    let pack = Pack::builtin();
    let mut secrets = Profile::default_masking();
    secrets.actions.clear();
    secrets.detectors = Some(
        pack.detectors
            .iter()
            .filter(|d| d.source.ends_with("secrets.toml"))
            .map(|d| d.id.to_string())
            .collect(),
    );
    let secrets = Arc::new(Engine::compile(&pack, &secrets).unwrap());
    g.bench_function("scan-secrets-only", |b| {
        b.iter(|| scan(&secrets, &chunks, ScanMode::Detect))
    });
    g.finish();
    // Throughput against the density of findings: the sensitive mix diluted in clean lines.
    passes(c, &diluted(4 << 20, 0));
    let mut g = c.benchmark_group("dlp-density");
    for every in [10, 100, 0] {
        let data = Bytes::from(diluted(4 << 20, every));
        let chunks = chunked(&data);
        let found = scan(&engine, &chunks, ScanMode::Detect);
        let name = match every {
            0 => "clean".to_string(),
            n => format!("1-in-{n}-lines"),
        };
        eprintln!(
            "dlp-density/{name}: {} bytes, {found} findings (one per {} bytes)",
            data.len(),
            data.len() as u64 / found.max(1)
        );
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| scan(&engine, &chunks, ScanMode::Detect))
        });
    }
    g.finish();
    let data = Bytes::from(csv_corpus(4 << 20));
    let chunks = chunked(&data);
    let mut g = c.benchmark_group("dlp-csv");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for (name, format) in [("as-text", Format::Text), ("as-csv", Format::Csv)] {
        g.bench_function(name, |b| {
            b.iter(|| scan_as(&engine, &chunks, ScanMode::Detect, Some(format)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
