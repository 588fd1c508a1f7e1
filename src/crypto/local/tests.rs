use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::crypto::format::ObjectId;

fn ctx(key: &str) -> EncryptionContext {
    EncryptionContext::new("demo", "bucket", key, ObjectId([1; 16]))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[tokio::test]
async fn first_run_creates_a_private_file_and_reuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys");
    let first = LocalKeyService::open_or_create(&path).expect("create");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(first.key_ids().len(), 1);
    let again = LocalKeyService::open_or_create(&path).expect("reopen");
    assert_eq!(again.key_ids(), first.key_ids());
    // Only the key file is left behind: no temporary files.
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);

    let dk = first
        .generate_data_key(None, &ctx("a"))
        .await
        .expect("generate");
    assert_eq!(dk.wrapped.len(), WRAPPED_LEN);
    let plain = again
        .decrypt_data_key(&dk.wrapped, &dk.key_id, &ctx("a"))
        .await
        .expect("unwrap");
    assert_eq!(*plain, *dk.plaintext);
}

#[test]
fn concurrent_first_runs_agree_on_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys");
    let ids: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| LocalKeyService::open_or_create(&path).map(|k| k.key_ids())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("open"))
            .collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn wrong_context_key_id_or_bytes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = LocalKeyService::open_or_create(&dir.path().join("keys")).expect("create");
    let dk = keys
        .generate_data_key(None, &ctx("a"))
        .await
        .expect("generate");
    let refused = keys
        .decrypt_data_key(&dk.wrapped, &dk.key_id, &ctx("b"))
        .await;
    assert!(matches!(refused, Err(KeyError::Refused(_))), "{refused:?}");
    let other_share = EncryptionContext::new("other", "bucket", "a", ObjectId([1; 16]));
    let refused = keys
        .decrypt_data_key(&dk.wrapped, &dk.key_id, &other_share)
        .await;
    assert!(matches!(refused, Err(KeyError::Refused(_))));
    for at in [0, 5, WRAPPED_LEN - 1] {
        let mut bad = dk.wrapped.clone();
        bad[at] ^= 1;
        let r = keys.decrypt_data_key(&bad, &dk.key_id, &ctx("a")).await;
        assert!(matches!(r, Err(KeyError::Refused(_))), "byte {at}: {r:?}");
    }
    let r = keys
        .decrypt_data_key(&dk.wrapped, "local-nope", &ctx("a"))
        .await;
    assert!(matches!(r, Err(KeyError::KeyUnusable(_))));
    let r = keys.generate_data_key(Some("local-nope"), &ctx("a")).await;
    assert!(matches!(r, Err(KeyError::KeyUnusable(_))));
}

#[tokio::test]
async fn rotation_uses_the_newest_key_and_keeps_the_old_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys");
    let keys = LocalKeyService::open_or_create(&path).expect("create");
    let old = keys
        .generate_data_key(None, &ctx("a"))
        .await
        .expect("generate");
    let other_process = LocalKeyService::open(&path).expect("open");
    let new_id = keys.rotate().expect("rotate");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(keys.key_ids().last(), Some(&new_id));
    let new = keys
        .generate_data_key(None, &ctx("a"))
        .await
        .expect("generate");
    assert_eq!(new.key_id, new_id);
    assert_ne!(new.key_id, old.key_id);
    let pinned = keys
        .generate_data_key(Some(&old.key_id), &ctx("a"))
        .await
        .expect("generate");
    assert_eq!(pinned.key_id, old.key_id);
    for dk in [&old, &new] {
        let plain = keys
            .decrypt_data_key(&dk.wrapped, &dk.key_id, &ctx("a"))
            .await
            .expect("unwrap");
        assert_eq!(*plain, *dk.plaintext);
    }
    // Another process re-reads the file when an object names a key it lacks, and then also
    // uses the new key for new data keys; a rotation there keeps ours.
    let plain = other_process
        .decrypt_data_key(&new.wrapped, &new.key_id, &ctx("a"))
        .await
        .expect("unwrap after re-reading the file");
    assert_eq!(*plain, *new.plaintext);
    assert_eq!(other_process.key_ids().last(), Some(&new_id));
    let third = other_process.rotate().expect("rotate");
    let reopened = LocalKeyService::open(&path).expect("open");
    assert_eq!(reopened.key_ids(), vec![old.key_id.clone(), new_id, third]);
}

#[tokio::test]
async fn rewrap_moves_a_data_key_to_another_key_under_the_same_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = LocalKeyService::open_or_create(&dir.path().join("keys")).expect("create");
    let old = keys
        .generate_data_key(None, &ctx("a"))
        .await
        .expect("generate");
    let new_id = keys.rotate().expect("rotate");
    let (wrapped, id) = keys
        .rewrap(&old.wrapped, &old.key_id, &ctx("a"), None)
        .expect("rewrap to the newest");
    assert_eq!(id, new_id);
    assert_ne!(wrapped, old.wrapped);
    let plain = keys
        .decrypt_data_key(&wrapped, &new_id, &ctx("a"))
        .await
        .expect("unwrap under the new key");
    assert_eq!(*plain, *old.plaintext, "the data key itself is unchanged");
    // Still bound to the context, and to the new key id.
    for (ctx, key_id) in [(ctx("b"), new_id.as_str()), (ctx("a"), old.key_id.as_str())] {
        assert!(matches!(
            keys.decrypt_data_key(&wrapped, key_id, &ctx).await,
            Err(KeyError::Refused(_))
        ));
    }
    // The wrong context is refused before anything is wrapped; an unknown target is unusable.
    assert!(matches!(
        keys.rewrap(&old.wrapped, &old.key_id, &ctx("b"), None),
        Err(KeyError::Refused(_))
    ));
    assert!(matches!(
        keys.rewrap(&old.wrapped, &old.key_id, &ctx("a"), Some("local-nope")),
        Err(KeyError::KeyUnusable(_))
    ));
    let (back, id) = keys
        .rewrap(&wrapped, &new_id, &ctx("a"), Some(&old.key_id))
        .expect("rewrap to a named key");
    assert_eq!(id, old.key_id);
    let plain = keys
        .decrypt_data_key(&back, &id, &ctx("a"))
        .await
        .expect("unwrap");
    assert_eq!(*plain, *old.plaintext);
}

#[test]
fn bad_permissions_or_content_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys");
    LocalKeyService::open_or_create(&path).expect("create");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = LocalKeyService::open(&path).expect_err("world-readable");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("0644"), "{err}");

    let good = format!("k1 {}\n", STANDARD.encode([7u8; 32]));
    for (text, reason) in [
        (String::new(), "holds no keys"),
        ("# only a comment\n".to_owned(), "holds no keys"),
        ("k1\n".to_owned(), "line 1: expected <id> <key>"),
        ("k1 %%%\n".to_owned(), "line 1: key is not base64"),
        (
            format!("k1 {}\n", STANDARD.encode([7u8; 16])),
            "line 1: key is not 32 bytes",
        ),
        (
            format!("bad/id {}\n", STANDARD.encode([7u8; 32])),
            "line 1: bad key id",
        ),
        (format!("{good}{good}"), "line 2: duplicate key id"),
    ] {
        std::fs::write(&path, &text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = LocalKeyService::open(&path).expect_err(reason);
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.ends_with(reason), "{msg} should end with {reason}");
    }
    let missing = dir.path().join("absent");
    let err = LocalKeyService::open(&missing).expect_err("missing");
    assert!(err.to_string().contains("absent"));
}
