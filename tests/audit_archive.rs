//! The off-host audit archive against S3 served by moto: sealed files shipped byte for byte
//! with Object Lock, one anchor per checkpoint, nothing lost across a restart with unshipped
//! files (and retention waits for them), a failing endpoint retried until it recovers, and
//! `audit verify --anchor` catching a trail rewritten with a recomputed chain and re-signed
//! checkpoints, and a trail missing a segment an anchor vouches for.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Gateway, Setup, moto};
use gatehouse::audit::archive::{Manifest, Progress};
use gatehouse::audit::keys::Signer;
use gatehouse::audit::{Audit, Decision, Event, Kind, chain};
use gatehouse::config::{ArchiveConfig, AuditConfig};

/// Generous bound on waiting for the archive task; never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

fn bucket_name() -> String {
    format!("audit-{}", ulid::Ulid::new().to_string().to_lowercase())
}

async fn s3() -> aws_sdk_s3::Client {
    gatehouse::audit::archive::client(Some("us-east-1"), Some(&moto::endpoint()), true).await
}

async fn create_bucket(name: &str, object_lock: bool) {
    s3().await
        .create_bucket()
        .bucket(name)
        .object_lock_enabled_for_bucket(object_lock)
        .send()
        .await
        .unwrap();
}

async fn keys_under(bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3()
        .await
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

async fn object(bucket: &str, key: &str) -> Vec<u8> {
    let out = s3()
        .await
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Every line of the trail in `dir`: (file, seq, is a checkpoint).
fn trail_lines(dir: &Path) -> Vec<(String, u64, bool)> {
    let mut out = Vec::new();
    for name in chain::segments(dir).unwrap() {
        for line in std::fs::read(dir.join(&name))
            .unwrap()
            .split(|b| *b == b'\n')
        {
            if line.is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            let seq = chain::link_of(&v).unwrap().seq;
            out.push((
                name.clone(),
                seq,
                gatehouse::audit::ocsf::kind(&v) == "checkpoint",
            ));
        }
    }
    out
}

fn checkpoint_seqs(dir: &Path) -> Vec<u64> {
    trail_lines(dir)
        .into_iter()
        .filter(|(_, _, cp)| *cp)
        .map(|(_, s, _)| s)
        .collect()
}

async fn wait_for(audit: &Audit, what: &str, done: impl Fn(&Progress) -> bool) -> Progress {
    let mut rx = audit.archive_progress().expect("archive configured");
    let got = tokio::time::timeout(PATIENCE, rx.wait_for(|p| done(p)))
        .await
        .map(|r| r.map(|p| *p));
    match got {
        Ok(Ok(p)) => p,
        _ => panic!(
            "archive never reached: {what}; progress {:?}",
            *audit.archive_progress().unwrap().borrow()
        ),
    }
}

fn event(i: u32) -> Event {
    Event {
        time: jiff::Timestamp::now(),
        request_id: format!("r{i}"),
        session_id: Some("s1".into()),
        partner: Some("acme".into()),
        client_ip: "127.0.0.1".into(),
        method: "GET".into(),
        path: format!("/exports/acme/object-{i}"),
        share: Some("exports".into()),
        key: Some(format!("acme/object-{i}")),
        status: 404,
        decision: Decision::Allow,
        reason: "no_such_key".into(),
        duration_ms: 1.0,
        ..Event::blank(Kind::Request)
    }
}

/// `n` records, each its own batch, so small files rotate between them.
async fn write_records(audit: &Audit, n: u32) {
    for i in 0..n {
        audit.record_durable(&event(i)).await.unwrap();
    }
}

/// Small files and frequent checkpoints, archived to `bucket` through `endpoint`.
fn small_config(root: &Path, bucket: &str, endpoint: &str) -> AuditConfig {
    let dir = root.join("audit");
    AuditConfig {
        checkpoint_every: 3,
        max_file_size: 700,
        archive: Some(ArchiveConfig {
            prefix: "gw/".into(),
            region: Some("us-east-1".into()),
            endpoint_url: Some(endpoint.to_string()),
            force_path_style: true,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            shutdown_wait: Duration::from_secs(30),
            ..ArchiveConfig::at(bucket, &dir)
        }),
        ..AuditConfig::at(dir)
    }
}

/// A loopback port with nothing listening.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_ships_what_was_sealed_and_retention_waits_for_it() {
    let bucket = bucket_name();
    moto::endpoint();
    create_bucket(&bucket, false).await;
    let root = tempfile::tempdir().unwrap();
    // First run: the archive cannot reach S3 at all.
    let down = small_config(root.path(), &bucket, &dead_endpoint());
    let audit = Audit::open(&down).unwrap();
    write_records(&audit, 12).await;
    wait_for(&audit, "a failed attempt", |p| p.failures >= 1).await;
    audit.close().await.unwrap();
    let dir = down.dir.clone();
    let names = chain::segments(&dir).unwrap();
    assert!(names.len() >= 3, "the run rotated: {names:?}");
    let manifest = Manifest::load(&down.archive.as_ref().unwrap().state_file).unwrap();
    assert!(manifest.shipped.is_empty() && manifest.anchored_seq == 0);
    assert!(keys_under(&bucket, "").await.is_empty());

    // Second run, still down, with a retention every sealed file is past: none may go.
    for name in &names {
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join(name))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
    }
    let retained = AuditConfig {
        retention: Some(Duration::from_secs(1)),
        ..down.clone()
    };
    let audit = Audit::open(&retained).unwrap();
    audit.close().await.unwrap();
    for name in &names {
        assert!(
            dir.join(name).exists(),
            "{name} deleted before it was archived"
        );
    }

    // Third run, S3 reachable: everything sealed is shipped, every checkpoint anchored.
    let up = small_config(root.path(), &bucket, &moto::endpoint());
    let audit = Audit::open(&up).unwrap();
    let sealed: Vec<String> = names[..names.len() - 1].to_vec();
    let last_cp = *checkpoint_seqs(&dir).last().unwrap();
    wait_for(&audit, "sealed files shipped", |p| {
        p.shipped >= sealed.len() && p.anchored_seq >= last_cp
    })
    .await;
    audit.close().await.unwrap();
    for name in &sealed {
        let local = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            object(&bucket, &format!("gw/{name}")).await,
            local,
            "{name}"
        );
    }
    let anchors = keys_under(&bucket, "gw/anchors/").await;
    let seqs = checkpoint_seqs(&dir);
    assert_eq!(anchors.len(), seqs.len(), "one anchor per checkpoint");
    for seq in seqs {
        assert!(
            anchors.contains(&format!("gw/anchors/{seq:020}.json")),
            "{seq}"
        );
    }

    // Fourth run: the shipped files past retention are deleted now, the newest one kept.
    for name in &names {
        if let Ok(f) = std::fs::File::options().write(true).open(dir.join(name)) {
            f.set_modified(std::time::UNIX_EPOCH).unwrap();
        }
    }
    let retained = AuditConfig {
        retention: Some(Duration::from_secs(1)),
        ..up
    };
    let audit = Audit::open(&retained).unwrap();
    audit.close().await.unwrap();
    for name in &sealed {
        assert!(
            !dir.join(name).exists(),
            "{name} archived and past retention"
        );
    }
}

/// A TCP proxy to moto that drops every connection while it is down.
struct Flaky {
    up: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    endpoint: String,
}

async fn flaky_proxy(target: String) -> Flaky {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let up = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let target = target.trim_start_matches("http://").to_string();
    let (u, r) = (up.clone(), refused.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            if !u.load(Ordering::SeqCst) {
                r.fetch_add(1, Ordering::SeqCst);
                drop(conn);
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                }
            });
        }
    });
    Flaky {
        up,
        refused,
        endpoint,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_retried_with_backoff_until_it_recovers() {
    let bucket = bucket_name();
    create_bucket(&bucket, false).await;
    let proxy = flaky_proxy(moto::endpoint()).await;
    let root = tempfile::tempdir().unwrap();
    let cfg = small_config(root.path(), &bucket, &proxy.endpoint);
    let audit = Audit::open(&cfg).unwrap();
    write_records(&audit, 12).await;
    // Requests were never held up: every record above was confirmed while S3 was down.
    let p = wait_for(&audit, "three failed passes", |p| p.failures >= 3).await;
    assert_eq!((p.shipped, p.anchored_seq), (0, 0));
    assert!(proxy.refused.load(Ordering::SeqCst) >= 3);
    assert!(keys_under(&bucket, "").await.is_empty());

    proxy.up.store(true, Ordering::SeqCst);
    let names = chain::segments(&cfg.dir).unwrap();
    let last_cp = *checkpoint_seqs(&cfg.dir).last().unwrap();
    wait_for(&audit, "recovery", |p| {
        p.shipped >= names.len() - 1 && p.anchored_seq >= last_cp
    })
    .await;
    audit.close().await.unwrap();
    // After close the shutdown checkpoint is anchored too.
    let seqs = checkpoint_seqs(&cfg.dir);
    let manifest = Manifest::load(&cfg.archive.as_ref().unwrap().state_file).unwrap();
    assert_eq!(manifest.anchored_seq, *seqs.last().unwrap());
    assert_eq!(keys_under(&bucket, "gw/anchors/").await.len(), seqs.len());
    for name in &names[..names.len() - 1] {
        let local = std::fs::read(cfg.dir.join(name)).unwrap();
        assert_eq!(
            object(&bucket, &format!("gw/{name}")).await,
            local,
            "{name}"
        );
        assert_eq!(manifest.shipped[name].size, local.len() as u64);
    }
}

// ---- the gateway end to end, and the attack the anchors exist for ----

fn verify(public_key: &Path, extra: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["audit", "verify", "--key"])
        .arg(public_key)
        .args(extra)
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn copy_trail(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for name in chain::segments(from).unwrap() {
        std::fs::copy(from.join(&name), to.path().join(&name)).unwrap();
    }
    to
}

/// What an attacker who owns the host does: edit a record, then recompute the whole chain
/// and re-sign every checkpoint with the real signing key. Gives the edited line's seq.
fn rewrite_and_resign(dir: &Path, signer: &Signer) -> u64 {
    let mut head = chain::Head::genesis();
    let mut edited = None;
    for name in chain::segments(dir).unwrap() {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let mut out = Vec::new();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let text = String::from_utf8(line.to_vec()).unwrap();
            let cut = text.rfind(",\"chain\":{\"seq\"").unwrap();
            // The chain (and a checkpoint's signature) close the `unmapped` object.
            let mut body = format!("{}}}}}", &text[..cut]);
            if edited.is_none() && body.contains("\"code\":404") {
                body = body.replace("\"code\":404", "\"code\":200");
                edited = Some(head.seq + 1);
            }
            let new = if body.contains("\"kind\":\"checkpoint\"") {
                let unsigned = head.link(body.as_bytes(), &name);
                let sig = signer.sign(&unsigned);
                let mut l = unsigned[..unsigned.len() - 2].to_vec();
                l.extend_from_slice(format!(",\"sig\":\"{sig}\"}}}}").as_bytes());
                head.advance(&l, &name);
                l
            } else {
                head.append(body.as_bytes(), &name)
            };
            out.extend_from_slice(&new);
            out.push(b'\n');
        }
        std::fs::write(dir.join(&name), out).unwrap();
    }
    edited.expect("a 404 record to edit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_catch_a_rewritten_resigned_trail_and_missing_segments() {
    let bucket = bucket_name();
    moto::endpoint();
    create_bucket(&bucket, true).await;
    let extra = format!(
        "{}[audit]\nmax_file_size = \"2KiB\"\ncheckpoint_every = 4\n\
         [audit.archive]\nbucket = \"{bucket}\"\nprefix = \"trail/\"\nregion = \"us-east-1\"\n\
         endpoint_url = \"{}\"\nforce_path_style = true\nobject_lock_mode = \"governance\"\n\
         object_lock_days = 1\nbackoff = \"10ms\"\nmax_backoff = \"100ms\"\nshutdown_wait = \"60s\"\n",
        common::LOOSE_TOKEN_LIMITS,
        moto::endpoint()
    );
    let g = Gateway::start(Setup {
        gateway_extra: Box::leak(extra.into_boxed_str()),
        ..Setup::default()
    })
    .await;
    g.store_put("acme/a.txt", b"alpha".to_vec(), Default::default())
        .await;
    let t = g.token("acme").await;
    for i in 0..12 {
        let path = if i % 3 == 0 {
            "/exports/acme/a.txt".to_string()
        } else {
            format!("/exports/acme/missing-{i}")
        };
        let _ = g.get(&t, &path).await.bytes().await.unwrap();
        g.state.audit.flush().await.unwrap();
    }
    g.state.audit.close().await.unwrap();
    let dir = g.audit_dir();
    let names = chain::segments(&dir).unwrap();
    assert!(names.len() >= 3, "{names:?}");
    let seqs = checkpoint_seqs(&dir);
    let p = *g.state.audit.archive_progress().unwrap().borrow();
    assert_eq!(
        p.anchored_seq,
        *seqs.last().unwrap(),
        "closing anchors the shutdown checkpoint"
    );
    assert_eq!(p.shipped, names.len() - 1);
    assert_eq!(
        keys_under(&bucket, "trail/anchors/").await.len(),
        seqs.len()
    );
    // Object Lock retention is on the archived objects.
    let first_key = format!("trail/{}", names[0]);
    let head = s3()
        .await
        .head_object()
        .bucket(&bucket)
        .key(&first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("GOVERNANCE")
    );
    assert!(head.object_lock_retain_until_date().is_some());

    let public = g.state.config.audit.public_key_file.clone();
    let anchor = format!("s3://{bucket}/trail");
    let endpoint = moto::endpoint();
    let s3_flags = [
        "--anchor",
        anchor.as_str(),
        "--endpoint-url",
        endpoint.as_str(),
        "--region",
        "us-east-1",
    ];

    // The real trail agrees with every anchor.
    let (code, out) = verify(&public, &s3_flags, &dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("anchors: {n} of {n}", n = seqs.len())),
        "{out}"
    );
    // The same, with the endpoint and region taken from the gateway's own configuration.
    let config = g.config_path.to_str().unwrap();
    let (code, out) = verify(&public, &["--anchor", &anchor, "--config", config], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("anchors: {n} of {n}", n = seqs.len())),
        "{out}"
    );

    // The attack: rewrite, recompute, re-sign with the real key. Plain verify passes...
    let forged = copy_trail(&dir);
    let signer = Signer::open_or_create(
        &g.state.config.audit.signing_key_file,
        &forged.path().join("pub.pem"),
    )
    .unwrap();
    let edited = rewrite_and_resign(forged.path(), &signer);
    let (code, out) = verify(&public, &[], forged.path());
    assert_eq!(code, 0, "the forgery verifies locally: {out}");
    // ... and verify --anchor fails at the first checkpoint after the edited record.
    let first_bad = seqs.iter().copied().find(|s| *s > edited).unwrap();
    let (code, out) = verify(&public, &s3_flags, forged.path());
    assert_eq!(code, 1, "{out}");
    let expected = format!(
        "FAILED against anchor s3://{bucket}/trail/anchors/{first_bad:020}.json (seq {first_bad},"
    );
    assert!(out.contains(&expected), "{expected}\n{out}");
    assert!(out.contains("anchored chain head"), "{out}");

    // The same with a local copy of the anchors.
    let copy = tempfile::tempdir().unwrap();
    for key in keys_under(&bucket, "trail/anchors/").await {
        let name = key.rsplit('/').next().unwrap().to_string();
        std::fs::write(copy.path().join(name), object(&bucket, &key).await).unwrap();
    }
    let copy_arg = copy.path().to_str().unwrap().to_string();
    let (code, out) = verify(&public, &["--anchor", &copy_arg], forged.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{first_bad:020}.json (seq {first_bad},")),
        "{out}"
    );
    let (code, out) = verify(&public, &["--anchor", &copy_arg], &dir);
    assert_eq!(code, 0, "{out}");

    // Missing segments: the newest file gone (with its shutdown checkpoint) passes a live
    // verify, but not against the anchors that vouch for it.
    let cut = copy_trail(&dir);
    std::fs::remove_file(cut.path().join(names.last().unwrap())).unwrap();
    let (code, out) = verify(&public, &["--live"], cut.path());
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify(&public, &["--live", "--anchor", &copy_arg], cut.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not have"), "{out}");
    // The oldest file gone: a warning alone for plain verify, a failure against anchors
    // (unless older anchors are explicitly skipped).
    let head_cut = copy_trail(&dir);
    std::fs::remove_file(head_cut.path().join(&names[0])).unwrap();
    let (code, out) = verify(&public, &[], head_cut.path());
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify(&public, &["--anchor", &copy_arg], head_cut.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("before the trail given"), "{out}");
    let (code, out) = verify(
        &public,
        &["--anchor", &copy_arg, "--anchor-skip-older"],
        head_cut.path(),
    );
    assert_eq!(code, 0, "{out}");
}
