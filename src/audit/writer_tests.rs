//! The writer without its thread: time is a parameter, so checkpoints, rotation and retention
//! are tested without clocks.

use std::time::{Duration, Instant};

use super::*;
use crate::audit::keys::PublicKey;
use crate::audit::verify;

const T: &str = "2026-03-01T10:00:00Z";

fn at(offset_secs: i64) -> jiff::Timestamp {
    T.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_secs(offset_secs)
}

fn cfg(dir: &Path) -> AuditConfig {
    AuditConfig::at(dir.join("audit"))
}

fn read(cfg: &AuditConfig, name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(cfg.dir.join(name))
        .unwrap()
        .lines()
        .map(|l| crate::audit::ocsf::native(&serde_json::from_str(l).unwrap()))
        .collect()
}

fn verify(cfg: &AuditConfig, live: bool) -> verify::Report {
    let files = verify::files_of(std::slice::from_ref(&cfg.dir)).unwrap();
    let opts = verify::Options {
        keys: vec![PublicKey::load(&cfg.public_key_file).unwrap()],
        live,
    };
    verify::verify(&files, &opts, &mut |_| {}).unwrap()
}

/// A record as the writer gets it (already an OCSF event).
const REC: &[u8] = br#"{"class_uid":6003,"status_detail":"ok","unmapped":{"kind":"request"}}"#;

#[test]
fn checkpoints_every_n_records_and_after_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let c = AuditConfig {
        checkpoint_every: 3,
        checkpoint_interval: Duration::from_secs(60),
        ..cfg(dir.path())
    };
    let mut w = Writer::start(&c, at(0)).unwrap();
    let t0 = w.last_checkpoint;
    // trail_opened + 7 records: checkpoints after the 3rd and 6th record.
    assert_eq!(w.commit(&[REC; 7], at(0), t0, false).unwrap(), 10);
    let lines = read(&c, "audit-2026-03-01.jsonl");
    let kinds: Vec<_> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "checkpoint").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds[3], "checkpoint");
    assert_eq!(lines[3]["checkpoint"]["reason"], "count");
    assert_eq!(lines[3]["checkpoint"]["records"], 3);
    // Two records are unsigned; nothing is due before the interval has passed.
    assert_eq!(
        w.commit(&[], at(30), t0 + Duration::from_secs(30), false)
            .unwrap(),
        0
    );
    assert_eq!(
        w.commit(&[], at(60), t0 + Duration::from_secs(60), false)
            .unwrap(),
        1
    );
    let last = read(&c, "audit-2026-03-01.jsonl").pop().unwrap();
    assert_eq!(last["checkpoint"]["reason"], "interval");
    assert_eq!(last["checkpoint"]["records"], 2);
    // Nothing new since: the timer writes nothing.
    assert_eq!(
        w.commit(&[], at(200), t0 + Duration::from_secs(200), false)
            .unwrap(),
        0
    );
    assert!(verify(&c, true).holds());
    w.commit(&[], at(201), t0, true).unwrap();
    let report = verify(&c, false);
    assert!(report.holds(), "{:?}", report.problem);
    assert_eq!((report.records, report.checkpoints), (8, 4));
}

#[test]
fn rotates_by_size_day_and_interval_and_links_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let c = AuditConfig {
        max_file_size: 400,
        rotate_interval: Duration::from_secs(3600),
        ..cfg(dir.path())
    };
    let mut w = Writer::start(&c, at(0)).unwrap();
    let t = w.last_checkpoint;
    w.commit(&[REC; 3], at(0), t, false).unwrap();
    // Over 400 bytes now: the next batch goes to a new file.
    w.commit(&[REC], at(1), t, false).unwrap();
    // An hour after the second file's start.
    w.commit(&[REC], at(1 + 3600), t, false).unwrap();
    // The next UTC day.
    w.commit(&[REC], at(86_400), t, true).unwrap();
    let names = chain::segments(&c.dir).unwrap();
    assert_eq!(
        names,
        [
            "audit-2026-03-01.jsonl",
            "audit-2026-03-01.1.jsonl",
            "audit-2026-03-01.2.jsonl",
            "audit-2026-03-02.jsonl"
        ]
    );
    for pair in names.windows(2) {
        let sealed = read(&c, &pair[0]);
        let last = sealed.last().unwrap();
        assert_eq!(last["checkpoint"]["reason"], "rotation", "{}", pair[0]);
        let first = &read(&c, &pair[1])[0];
        assert_eq!(first["chain"]["prev_file"], pair[0].as_str());
    }
    let report = verify(&c, false);
    assert!(report.holds(), "{:?}", report.problem);
    assert_eq!(report.files, 4);
    assert_eq!(report.records, 7);
}

#[test]
fn retention_deletes_old_sealed_files_never_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = AuditConfig {
        retention: Some(Duration::from_secs(7 * 86_400)),
        ..cfg(dir.path())
    };
    std::fs::create_dir_all(&c.dir).unwrap();
    let age = |name: &str, days: u64| {
        let f = std::fs::File::create(c.dir.join(name)).unwrap();
        let t = std::time::SystemTime::try_from(at(0)).unwrap();
        f.set_modified(t - Duration::from_secs(days * 86_400))
            .unwrap();
    };
    age("audit-2026-02-01.jsonl", 28);
    age("audit-2026-02-27.jsonl", 2);
    // Today's file is the active one, however old its last write.
    age("audit-2026-03-01.jsonl", 30);
    std::fs::write(c.dir.join("notes.txt"), b"not a trail file").unwrap();
    let _w = Writer::start(&c, at(0)).unwrap();
    let mut left: Vec<_> = std::fs::read_dir(&c.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "audit-2026-02-27.jsonl",
            "audit-2026-03-01.jsonl",
            "notes.txt"
        ]
    );
}

#[test]
fn a_torn_last_line_is_cut_off_and_reported_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let mut w = Writer::start(&c, at(0)).unwrap();
    let t = w.last_checkpoint;
    w.commit(&[REC; 2], at(0), t, false).unwrap();
    drop(w);
    let file = c.dir.join("audit-2026-03-01.jsonl");
    let mut f = OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(br#"{"kind":"request","rea"#).unwrap();
    let mut w = Writer::start(&c, at(10)).unwrap();
    w.commit(&[REC], at(10), t, true).unwrap();
    let lines = read(&c, "audit-2026-03-01.jsonl");
    let opened: Vec<_> = lines
        .iter()
        .filter(|l| l["kind"] == "trail_opened")
        .collect();
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[1]["previous_end"], "unclosed");
    assert_eq!(opened[1]["discarded_bytes"], 22);
    let report = verify(&c, false);
    assert!(report.holds(), "{:?}", report.problem);
    assert!(
        report.warnings.iter().any(|w| w.contains("unclean stop")),
        "{:?}",
        report.warnings
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("torn last line of 22 bytes"))
    );
}

#[test]
fn a_half_written_batch_is_cut_back_before_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let mut w = Writer::start(&c, at(0)).unwrap();
    let t = w.last_checkpoint;
    w.commit(&[REC], at(0), t, false).unwrap();
    // What a failed write leaves: part of a batch on disk, the file handle dropped.
    let file = c.dir.join("audit-2026-03-01.jsonl");
    OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"{\"kind\":\"request\",\"chain\":{\"seq\":3,")
        .unwrap();
    w.out = None;
    w.commit(&[REC], at(1), t, true).unwrap();
    let report = verify(&c, false);
    assert!(report.holds(), "{:?}", report.problem);
    assert_eq!(report.records, 3);
}

/// A trail written before records were OCSF (flat lines, `chain` and `sig` at the top) is
/// continued with OCSF lines, and the whole verifies: the old shutdown checkpoint's signature
/// and the chain across both forms.
#[test]
fn a_trail_of_the_older_flat_format_is_continued_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    std::fs::create_dir_all(&c.dir).unwrap();
    let signer = Signer::open_or_create(&c.signing_key_file, &c.public_key_file).unwrap();
    let name = "audit-2026-03-01.jsonl";
    let flat = |seq: u64, prev: &[u8; 32], body: &str| {
        format!(
            "{},\"chain\":{{\"seq\":{seq},\"prev\":\"{}\"}}}}",
            &body[..body.len() - 1],
            chain::hex(prev)
        )
    };
    let one = flat(
        1,
        &chain::GENESIS,
        r#"{"time":"2026-03-01T09:00:00Z","kind":"request","partner":"acme","decision":"allow","reason":"ok"}"#,
    );
    let unsigned = flat(
        2,
        &chain::line_hash(one.as_bytes()),
        &format!(
            r#"{{"time":"2026-03-01T09:00:01Z","kind":"checkpoint","checkpoint":{{"reason":"shutdown","records":1,"key_id":"{}","alg":"Ed25519"}}}}"#,
            signer.key_id()
        ),
    );
    let sig = signer.sign(unsigned.as_bytes());
    let two = format!("{},\"sig\":\"{sig}\"}}", &unsigned[..unsigned.len() - 1]);
    std::fs::write(c.dir.join(name), format!("{one}\n{two}\n")).unwrap();
    assert!(
        verify(&c, false).holds(),
        "the flat trail verifies as it is"
    );

    let mut w = Writer::start(&c, at(0)).unwrap();
    let t = w.last_checkpoint;
    w.commit(&[REC], at(0), t, true).unwrap();
    let lines = read(&c, name);
    assert_eq!(lines[2]["kind"], "trail_opened");
    assert_eq!(
        lines[2]["previous_end"], "shutdown",
        "the flat shutdown checkpoint is seen"
    );
    assert_eq!(lines[2]["chain"]["seq"], 3);
    let raw = std::fs::read_to_string(c.dir.join(name)).unwrap();
    assert!(
        raw.lines()
            .skip(2)
            .all(|l| l.contains("\"class_uid\":") && l.ends_with("}}")),
        "new lines are OCSF: {raw}"
    );
    let report = verify(&c, false);
    assert!(report.holds(), "{:?}", report.problem);
    assert_eq!((report.checkpoints, report.records), (2, 3));
}

#[test]
fn a_file_without_a_chain_starts_a_new_file_linked_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    std::fs::create_dir_all(&c.dir).unwrap();
    std::fs::write(
        c.dir.join("audit-2026-03-01.jsonl"),
        b"{\"kind\":\"request\"}\n",
    )
    .unwrap();
    let mut w = Writer::start(&c, at(0)).unwrap();
    let t = w.last_checkpoint;
    w.commit(&[REC], at(0), t, true).unwrap();
    let first = &read(&c, "audit-2026-03-01.1.jsonl")[0];
    assert_eq!(first["previous_end"], "unchained");
    assert_eq!(first["chain"]["prev_file"], "audit-2026-03-01.jsonl");
    let only_new = verify::files_of(&[c.dir.join("audit-2026-03-01.1.jsonl")]).unwrap();
    let opts = verify::Options {
        keys: vec![PublicKey::load(&c.public_key_file).unwrap()],
        live: false,
    };
    assert!(
        verify::verify(&only_new, &opts, &mut |_| {})
            .unwrap()
            .holds()
    );
}

#[test]
fn the_instant_parameter_drives_the_wakeups() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let mut w = Writer::start(&c, at(0)).unwrap();
    let shared = Shared {
        healthy: AtomicBool::new(true),
        written: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        flood: parking_lot::Mutex::new(Flood::new(1, Duration::from_secs(60))),
        wake: tokio::sync::Notify::new(),
        durable: parking_lot::Mutex::new(None),
    };
    let now = Instant::now();
    assert_eq!(
        w.next_deadline(false, &shared, now),
        None,
        "idle: sleep until a message"
    );
    assert_eq!(
        w.next_deadline(true, &shared, now),
        Some(now + Duration::from_secs(1))
    );
    let t = w.last_checkpoint;
    w.commit(&[REC], at(0), t, false).unwrap();
    assert_eq!(
        w.next_deadline(false, &shared, now),
        Some(t + c.checkpoint_interval)
    );
}
