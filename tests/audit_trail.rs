//! The tamper-evident trail end to end: a real gateway writes it (rotating, checkpointing),
//! `audit verify` finds every form of tampering at its line, a served object has a durable
//! record before its first byte, unauthenticated floods are aggregated, and the analyst
//! commands read the trail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Gateway, Setup};
use gatehouse::audit::keys::{PublicKey, Signer};
use gatehouse::audit::verify::{self, Options, Report};
use gatehouse::audit::{chain, ocsf};
use reqwest::StatusCode;

/// Small files and frequent checkpoints, so a short run rotates and signs many times.
const SMALL_TRAIL: &str = "[token_limits]\nper_ip = \"10000/s\"\nlockout_after = 1000\n[audit]\nmax_file_size = \"6KiB\"\ncheckpoint_every = 4\nunauthenticated_burst = 5\n";

async fn gateway() -> Gateway {
    Gateway::start(Setup {
        gateway_extra: SMALL_TRAIL,
        ..Setup::default()
    })
    .await
}

/// A closed trail from real traffic: the token, object reads, misses and refusals.
async fn closed_trail(g: &Gateway) -> PathBuf {
    g.store_put("acme/a.txt", b"alpha".to_vec(), Default::default())
        .await;
    let t = g.token("acme").await;
    for i in 0..12 {
        let path = if i % 3 == 0 {
            "/exports/acme/a.txt".to_string()
        } else {
            format!("/exports/acme/missing-{i}")
        };
        let resp = g.get(&t, &path).await;
        let _ = resp.bytes().await.unwrap();
        // Each flush ends a batch, so the size limit is checked between them.
        g.state.audit.flush().await.unwrap();
    }
    g.state.audit.close().await.unwrap();
    g.audit_dir()
}

fn public_key(g: &Gateway) -> PathBuf {
    g.state.config.audit.public_key_file.clone()
}

/// The trail as files of exact lines (without newlines), in order.
#[derive(Clone)]
struct Trail(Vec<(String, Vec<Vec<u8>>)>);

impl Trail {
    fn load(dir: &Path) -> Trail {
        Trail(
            chain::segments(dir)
                .unwrap()
                .into_iter()
                .map(|name| {
                    let bytes = std::fs::read(dir.join(&name)).unwrap();
                    let lines = bytes
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(<[u8]>::to_vec)
                        .collect();
                    (name, lines)
                })
                .collect(),
        )
    }

    /// Writes the files to a new directory; `torn` leaves the last line without its newline.
    fn write(&self, torn: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (i, (name, lines)) in self.0.iter().enumerate() {
            let mut out = Vec::new();
            for line in lines {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            if torn && i == self.0.len() - 1 {
                out.pop();
            }
            std::fs::write(dir.path().join(name), out).unwrap();
        }
        dir
    }

    /// (file, 0-based line) of the first line whose text contains every needle.
    fn find(&self, needles: &[&str]) -> (usize, usize) {
        for (f, (_, lines)) in self.0.iter().enumerate() {
            for (l, line) in lines.iter().enumerate() {
                let text = String::from_utf8_lossy(line);
                if needles.iter().all(|n| text.contains(n)) {
                    return (f, l);
                }
            }
        }
        panic!("no line with {needles:?}");
    }

    /// Like `find`, for a line that is not the last of its file.
    fn find_inner(&self, needles: &[&str]) -> (usize, usize) {
        for (f, (_, lines)) in self.0.iter().enumerate() {
            for (l, line) in lines.iter().enumerate().take(lines.len() - 1) {
                let text = String::from_utf8_lossy(line);
                if needles.iter().all(|n| text.contains(n)) {
                    return (f, l);
                }
            }
        }
        panic!("no inner line with {needles:?}");
    }

    fn text(&self, f: usize, l: usize) -> String {
        String::from_utf8(self.0[f].1[l].clone()).unwrap()
    }

    fn set(&mut self, f: usize, l: usize, text: String) {
        self.0[f].1[l] = text.into_bytes();
    }

    /// Recomputes every `prev` after (f, l), re-signing checkpoints with `signer` under their
    /// old key id: what someone without the real key would have to do to hide an edit.
    fn rechain(&mut self, f: usize, l: usize, signer: &Signer) {
        let mut prev = chain::line_hash(&self.0[f].1[l]);
        let positions: Vec<(usize, usize)> = (0..self.0.len())
            .flat_map(|fi| (0..self.0[fi].1.len()).map(move |li| (fi, li)))
            .filter(|p| *p > (f, l))
            .collect();
        for (fi, li) in positions {
            let text = self.text(fi, li);
            let start = text.find("\"prev\":\"").unwrap() + 8;
            let mut text = format!(
                "{}{}{}",
                &text[..start],
                chain::hex(&prev),
                &text[start + 64..]
            );
            if let Some(sig) = text.rfind(",\"sig\":\"") {
                let unsigned = format!("{}}}}}", &text[..sig]);
                text = format!(
                    "{},\"sig\":\"{}\"}}}}",
                    &text[..sig],
                    signer.sign(unsigned.as_bytes())
                );
            }
            prev = chain::line_hash(text.as_bytes());
            self.set(fi, li, text);
        }
    }
}

fn check(dir: &Path, key: &Path, live: bool) -> Report {
    let opts = Options {
        keys: vec![PublicKey::load(key).unwrap()],
        live,
    };
    let files = verify::files_of(&[dir.to_path_buf()]).unwrap();
    verify::verify(&files, &opts, &mut |_| {}).unwrap()
}

/// Asserts the first problem is at `name`, 1-based `line`, and says `what`.
fn assert_broken(r: &Report, name: &str, line: usize, what: &str, case: &str) {
    let p = r
        .problem
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: tampering not found"));
    assert_eq!(
        (p.file.file_name().unwrap().to_str().unwrap(), p.line),
        (name, line as u64),
        "{case}: {p}"
    );
    assert!(p.what.contains(what), "{case}: {p}");
}

fn gatehouse(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_every_form_of_tampering_at_its_line() {
    let g = gateway().await;
    let dir = closed_trail(&g).await;
    let key = public_key(&g);
    let trail = Trail::load(&dir);
    assert!(
        trail.0.len() >= 3,
        "the trail rotated: {} file(s)",
        trail.0.len()
    );
    let intact = check(&dir, &key, false);
    assert!(intact.holds(), "{:?}", intact.problem);
    assert!(intact.closed);
    assert!(intact.checkpoints >= trail.0.len() as u64);
    let name = |f: usize| trail.0[f].0.clone();

    // Edited: one field of a record in the second file.
    let (f, l) = trail.find_inner(&["\"kind\":\"request\"", "missing-"]);
    let mut t = trail.clone();
    t.set(f, l, trail.text(f, l).replace("missing-", "MISSING-"));
    let r = check(t.write(false).path(), &key, false);
    assert_broken(&r, &name(f), l + 1, "record altered", "edited");

    // Inserted: a copy of a record right after it.
    let mut t = trail.clone();
    t.0[f].1.insert(l + 1, trail.0[f].1[l].clone());
    let r = check(t.write(false).path(), &key, false);
    assert_broken(&r, &name(f), l + 2, "goes back", "duplicated");

    // Inserted: a fabricated record without chain fields.
    let mut t = trail.clone();
    t.0[f]
        .1
        .insert(l, br#"{"kind":"request","reason":"ok"}"#.to_vec());
    let r = check(t.write(false).path(), &key, false);
    assert_broken(&r, &name(f), l + 1, "no chain fields", "inserted");

    // Deleted: the record goes; the next line shows the gap.
    let mut t = trail.clone();
    t.0[f].1.remove(l);
    let r = check(t.write(false).path(), &key, false);
    assert_broken(&r, &name(f), l + 1, "deleted", "deleted");

    // Reordered: two neighbours swapped.
    let mut t = trail.clone();
    t.0[f].1.swap(l, l + 1);
    let r = check(t.write(false).path(), &key, false);
    assert_broken(&r, &name(f), l + 1, "sequence jumps", "reordered");

    // Deleted checkpoint.
    let (cf, cl) = trail.find(&["\"reason\":\"count\""]);
    let mut t = trail.clone();
    t.0[cf].1.remove(cl);
    let r = check(t.write(false).path(), &key, false);
    assert_broken(&r, &name(cf), cl + 1, "deleted", "checkpoint deleted");

    // Edited, and the chain recomputed after it, checkpoints re-signed with another key.
    let forger_dir = tempfile::tempdir().unwrap();
    let forger = Signer::open_or_create(
        &forger_dir.path().join("k.pem"),
        &forger_dir.path().join("k.pub"),
    )
    .unwrap();
    let mut t = trail.clone();
    t.set(f, l, trail.text(f, l).replace("missing-", "MISSING-"));
    t.rechain(f, l, &forger);
    let forged = t.write(false);
    let first_after = (0..t.0.len())
        .flat_map(|fi| (0..t.0[fi].1.len()).map(move |li| (fi, li)))
        .find(|p| *p > (f, l) && t.text(p.0, p.1).contains("\"kind\":\"checkpoint\""))
        .unwrap();
    let r = check(forged.path(), &key, false);
    assert_broken(
        &r,
        &name(first_after.0),
        first_after.1 + 1,
        "signature does not verify",
        "rechained",
    );
    // Re-signing alone, without an edit, fails the same way.
    let mut t2 = trail.clone();
    t2.rechain(0, 0, &forger);
    let r = check(t2.write(false).path(), &key, false);
    assert!(
        r.problem
            .unwrap()
            .what
            .contains("signature does not verify")
    );

    // A sealed file cut short: the next file shows the gap.
    let mut t = trail.clone();
    t.0[0].1.pop();
    let r = check(t.write(false).path(), &key, false);
    assert_broken(&r, &name(1), 1, "deleted", "sealed file truncated");
    // The checkpoint that sealed a file edited.
    let mut t = trail.clone();
    let seal = t.0[0].1.len() - 1;
    t.set(
        0,
        seal,
        trail.text(0, seal).replace("\"rotation\"", "\"interval\""),
    );
    let r = check(t.write(false).path(), &key, false);
    assert_broken(
        &r,
        &name(0),
        seal + 1,
        "signature does not verify",
        "seal edited",
    );

    // A whole file in the middle gone.
    let mut t = trail.clone();
    t.0.remove(1);
    let r = check(t.write(false).path(), &key, false);
    assert_broken(&r, &name(2), 1, "a file is missing", "file deleted");

    // The tail cut off after a checkpoint or mid-way: not closed, and the unsigned part is named.
    let last = trail.0.len() - 1;
    let mut t = trail.clone();
    let kept = t.0[last].1.len() - 1;
    t.0[last].1.truncate(kept);
    let cut = t.write(false);
    let r = check(cut.path(), &key, false);
    assert_broken(
        &r,
        &name(last),
        kept,
        "not closed by a shutdown checkpoint",
        "tail truncated",
    );
    let live = check(cut.path(), &key, true);
    assert!(live.holds(), "{:?}", live.problem);
    assert!(
        live.warnings.iter().any(|w| w.contains("not closed")),
        "{:?}",
        live.warnings
    );

    // A torn last line.
    let r = check(trail.write(true).path(), &key, true);
    assert_broken(
        &r,
        &name(last),
        trail.0[last].1.len(),
        "incomplete last line",
        "torn",
    );

    // The shutdown checkpoint itself edited.
    let mut t = trail.clone();
    let end = t.0[last].1.len() - 1;
    t.set(
        last,
        end,
        trail
            .text(last, end)
            .replace("\"shutdown\"", "\"interval\""),
    );
    let r = check(t.write(false).path(), &key, false);
    assert_broken(
        &r,
        &name(last),
        end + 1,
        "signature does not verify",
        "checkpoint edited",
    );

    // A key that did not sign the trail.
    let r = check(&dir, &forger_dir.path().join("k.pub"), false);
    assert!(r.problem.unwrap().what.contains("unknown key"));

    // The command: exit 0 only when everything holds, the place on stdout otherwise.
    let key_arg = key.to_str().unwrap();
    let (code, out, err) = gatehouse(&["audit", "verify", "--key", key_arg, dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK:"), "{out}");
    let mut t = trail.clone();
    t.set(f, l, trail.text(f, l).replace("missing-", "MISSING-"));
    let bad = t.write(false);
    let (code, out, _) = gatehouse(&[
        "audit",
        "verify",
        "--key",
        key_arg,
        bad.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    let at = format!(
        "FAILED at {}:{}:",
        bad.path().join(name(f)).display(),
        l + 1
    );
    assert!(out.contains(&at), "{out}");
    let (code, _, err) = gatehouse(&[
        "audit",
        "verify",
        "--key",
        "/nonexistent.pem",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_object_is_on_record_before_its_first_byte() {
    let g = gateway().await;
    g.store_put("acme/b.txt", b"bravo".to_vec(), Default::default())
        .await;
    let t = g.token("acme").await;
    let resp = g.get(&t, "/exports/acme/b.txt").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rid = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    // Headers are here and the body not read yet: the start record must already be on disk.
    let on_disk = Trail::load(&g.audit_dir());
    let (f, l) = on_disk.find(&["\"kind\":\"request_start\"", &rid]);
    let start = ocsf::native(&serde_json::from_str(&on_disk.text(f, l)).unwrap());
    assert_eq!(start["partner"], "acme");
    assert_eq!(start["key"], "acme/b.txt");
    assert_eq!(start["status"], 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"bravo");
    let done = g.audit_event(&rid).await;
    assert_eq!(done["kind"], "request");
    assert_eq!(done["bytes_out"], 5);
    assert!(
        done["chain"]["seq"].as_u64() > start["chain"]["seq"].as_u64(),
        "the start comes first"
    );
    // Misses and refusals send no object byte and get no start record.
    let miss = g.get(&t, "/exports/acme/none").await;
    let miss_id = miss.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let _ = miss.bytes().await;
    g.state.audit.flush().await.unwrap();
    let lines = g.audit_lines(0).await;
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["request_id"] == miss_id.as_str())
            .count(),
        1
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthenticated_floods_are_aggregated_and_do_not_stop_service() {
    let g = gateway().await;
    g.store_put("acme/c.txt", b"charlie".to_vec(), Default::default())
        .await;
    let sends = (0..300).map(|i| {
        let req = g.client.get(g.url("/exports/acme/c.txt"));
        let req = if i % 2 == 0 {
            req
        } else {
            req.bearer_auth("not-a-token")
        };
        async move { req.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    g.state.audit.flush().await.unwrap();
    assert!(g.state.audit.healthy());
    let lines = g.audit_lines(0).await;
    let one_by_one = lines
        .iter()
        .filter(|l| l["kind"] == "request" && l["decision"] == "deny")
        .count();
    assert_eq!(one_by_one, 5, "the burst, then counting");
    let summaries: Vec<_> = lines
        .iter()
        .filter(|l| l["kind"] == "refusals_aggregated")
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(summaries[0]["client_ip"], "127.0.0.1");
    assert_eq!(summaries[0]["count"], 295);
    let by_reason: u64 = summaries[0]["reasons"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_reason, 295);
    assert!(summaries[0]["reasons"]["token_missing"].as_u64().unwrap() > 0);
    // Partners with tokens are served as before.
    let t = g.token("acme").await;
    let resp = g.get(&t, "/exports/acme/c.txt").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"charlie");
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_tail_read_the_trail() {
    let g = gateway().await;
    let dir = closed_trail(&g).await;
    let d = dir.to_str().unwrap();
    let (code, out, err) = gatehouse(&[
        "audit",
        "search",
        "--partner",
        "acme",
        "--decision",
        "deny",
        "--format",
        "json",
        d,
    ]);
    assert_eq!(code, 0, "{err}");
    let found: Vec<serde_json::Value> = out
        .lines()
        .map(|l| ocsf::native(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(found.len(), 8, "{out}");
    assert!(
        found
            .iter()
            .all(|v| v["partner"] == "acme" && v["reason"] == "no_such_key")
    );
    let (code, out, _) = gatehouse(&["audit", "search", "--kind", "request_start", d]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1 + 4, "header and four reads: {out}");
    assert!(
        out.lines().nth(1).unwrap().contains("/exports/acme/a.txt"),
        "{out}"
    );
    let (code, out, _) = gatehouse(&[
        "audit",
        "search",
        "--since",
        "2000-01-01",
        "--until",
        "2000-01-02",
        d,
    ]);
    assert_eq!(
        (code, out.lines().count()),
        (0, 1),
        "only the header: {out}"
    );
    let (code, _, err) = gatehouse(&["audit", "search", "--since", "someday", d]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = gatehouse(&["audit", "tail", "-n", "2", "--format", "json", d]);
    assert_eq!(code, 0);
    let tail: Vec<serde_json::Value> = out
        .lines()
        .map(|l| ocsf::native(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[1]["checkpoint"]["reason"], "shutdown");
    g.stop().await;
}
