//! End to end: `gatehouse keys rotate-local` and `gatehouse keys rewrap` (the binary) beside a
//! running gateway: the local key file on the embedded store, and KMS + S3 served by moto.
//! After the rewrap the objects still open through the gateway, their metadata names the new
//! key, their bodies are byte for byte what they were, and a wrong context is still refused.

#[macro_use]
mod common;

use common::{Backend, Gateway, Setup};
use gatehouse::crypto::EnvelopeMetadata;
use gatehouse::crypto::KeyError;
use reqwest::StatusCode;

both_backends!(rewrapped_objects_still_open_through_the_gateway);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn gatehouse(args: Vec<String>) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 % 251) as u8).collect()
}

async fn envelope(g: &Gateway, key: &str) -> (Vec<u8>, EnvelopeMetadata) {
    let (stored, meta) = g.store_get(key).await;
    (stored, EnvelopeMetadata::from_map(&meta.metadata).unwrap())
}

async fn rewrapped_objects_still_open_through_the_gateway(backend: Backend) {
    let g = Gateway::start(Setup {
        backend,
        encrypt: true,
        ..Setup::default()
    })
    .await;
    let config = g.config_path.to_str().unwrap().to_owned();
    let t = g.token("full").await;
    let big = pattern(3 * 65_536 + 17);
    for (key, body) in [("a.bin", big.clone()), ("dir/b.txt", b"bee".to_vec())] {
        let resp = g
            .client
            .put(g.url(&format!("/exports/{key}")))
            .bearer_auth(&t)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    g.store_put("plain.txt", b"not encrypted".to_vec(), Default::default())
        .await;
    // A copy of a.bin under another key: its data key's context no longer matches.
    let (stored, meta) = g.store_get("a.bin").await;
    g.store_put("moved.bin", stored, meta.metadata).await;
    let (before, old) = envelope(&g, "a.bin").await;

    let to = match backend {
        Backend::Fs => {
            let run = gatehouse(strings(&["keys", "rotate-local", "--config", &config])).await;
            assert_eq!(run.code, 0, "{}", run.stderr);
            let id = run
                .stdout
                .split_whitespace()
                .nth(2)
                .expect("added key <id>")
                .to_owned();
            assert!(id.starts_with("local-"), "{}", run.stdout);
            id
        }
        Backend::S3 => common::moto::create_kms_key().await,
    };
    let rewrap = |dry_run: bool| {
        let mut args = vec!["keys", "rewrap", "--config", &config, "--share", "exports"];
        if backend == Backend::S3 {
            args.extend(["--to", to.as_str()]);
        }
        if dry_run {
            args.push("--dry-run");
        }
        gatehouse(args.into_iter().map(str::to_owned).collect())
    };

    // A dry run changes nothing.
    let run = rewrap(true).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("3 would be re-wrapped"),
        "{}",
        run.stdout
    );
    assert_eq!(envelope(&g, "a.bin").await.1, old);

    // The moved copy fails (and is listed, exit 1); everything else is re-wrapped.
    let run = rewrap(false).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("2 re-wrapped, 0 already under it, 1 plaintext"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("failed: internal/exp/moved.bin: data key refused"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("plaintext: internal/exp/plain.txt"));
    assert!(
        run.stdout.contains("rewrapped internal/exp/a.bin"),
        "one line per object"
    );

    let (after, new) = envelope(&g, "a.bin").await;
    assert_eq!(after, before, "the body was not rewritten");
    match backend {
        Backend::Fs => assert_eq!(new.key_id, to),
        Backend::S3 => assert!(
            new.key_id.ends_with(&format!(":key/{to}")),
            "{}",
            new.key_id
        ),
    }
    assert_ne!(new.key_id, old.key_id);
    assert_ne!(new.wrapped_key, old.wrapped_key);
    assert_eq!(
        (new.object_id, new.commitment, &new.share),
        (old.object_id, old.commitment, &old.share),
        "only the wrapped key and its key id change"
    );

    // Through the gateway, which was running all along.
    for (key, body) in [("a.bin", &big[..]), ("dir/b.txt", b"bee")] {
        let resp = g.get(&t, &format!("/exports/{key}")).await;
        assert_eq!(resp.status(), StatusCode::OK, "{key}");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), body, "{key}");
    }
    let resp = g
        .client
        .get(g.url("/exports/a.bin"))
        .bearer_auth(&t)
        .header("range", "bytes=65530-65545")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &big[65_530..=65_545]);

    // A wrong context is still refused: by the gateway for the moved copy...
    let resp = g.get(&t, "/exports/moved.bin").await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let rid = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(g.audit_event(&rid).await["reason"], "object_key_refused");
    // ...and by the key service for the re-wrapped key under another object's context.
    let share = &g.state.shares["exports"].config;
    let service = g.state.keys.as_ref().unwrap().service().clone();
    let right = new.context(&share.bucket, "internal/exp/a.bin");
    let wrong = new.context(&share.bucket, "internal/exp/dir/b.txt");
    assert!(
        service
            .decrypt_data_key(&new.wrapped_key, &new.key_id, &right)
            .await
            .is_ok()
    );
    assert!(matches!(
        service
            .decrypt_data_key(&new.wrapped_key, &new.key_id, &wrong)
            .await,
        Err(KeyError::Refused(_))
    ));

    // Once the bad copy is gone, a rerun resumes: nothing left to do, exit 0.
    let resp = g
        .client
        .delete(g.url("/exports/moved.bin"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let run = rewrap(false).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("0 re-wrapped, 2 already under it, 1 plaintext"),
        "{}",
        run.stdout
    );
    g.stop().await;
}

/// `rotate-local` is for the local key service only, and `rewrap` refuses shares that are not
/// envelope-encrypted; both are usage errors (exit 64) that change nothing.
#[tokio::test]
async fn usage_errors_exit_64() {
    let g = Gateway::start(Setup::default()).await;
    let config = g.config_path.to_str().unwrap();
    let run = gatehouse(strings(&[
        "keys", "rewrap", "--config", config, "--share", "exports",
    ]))
    .await;
    assert_eq!(run.code, 64, "{}", run.stderr);
    assert!(
        run.stderr.contains("not envelope-encrypted"),
        "{}",
        run.stderr
    );
    let run = gatehouse(strings(&[
        "keys", "rewrap", "--config", config, "--share", "nope",
    ]))
    .await;
    assert_eq!(run.code, 64, "{}", run.stderr);
    g.stop().await;
}
