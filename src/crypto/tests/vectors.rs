//! Checks the test vectors written in docs/envelope-format.md.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::*;
use crate::crypto::context::EncryptionContext;
use crate::crypto::derive::key_schedule;
use crate::crypto::format::{hex, unhex};

const DOC: &str = include_str!("../../../docs/envelope-format.md");

/// `name: value` lines between the vector markers; `"..."` values are text, others hex.
fn vectors() -> HashMap<&'static str, &'static str> {
    let start = DOC.find("<!-- vectors:begin -->").expect("begin marker");
    let end = DOC.find("<!-- vectors:end -->").expect("end marker");
    DOC[start..end]
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn get(v: &HashMap<&str, &'static str>, name: &str) -> &'static str {
    v.get(name)
        .unwrap_or_else(|| panic!("vector {name} missing"))
}

fn text(v: &HashMap<&str, &'static str>, name: &str) -> &'static str {
    let s = get(v, name);
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .expect("quoted")
}

fn bytes(v: &HashMap<&str, &'static str>, name: &str) -> Vec<u8> {
    unhex(get(v, name)).unwrap_or_else(|| panic!("vector {name} is not hex"))
}

/// The plaintext of vector 3: byte i is i mod 251.
fn mod251(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn documented_vectors_hold() {
    let v = vectors();
    let data_key: [u8; 32] = bytes(&v, "data_key").try_into().expect("32 bytes");
    let object_id = ObjectId(bytes(&v, "object_id").try_into().expect("16 bytes"));
    let at = ObjectLocation {
        bucket: text(&v, "bucket"),
        key: text(&v, "internal_key"),
    };
    let context = EncryptionContext::new(text(&v, "share"), at.bucket, at.key, object_id);
    for (name, value) in context.pairs() {
        assert_eq!(text(&v, name), value, "context {name}");
    }
    assert_eq!(
        hex(&Sha256::digest(context.canonical())),
        get(&v, "context_canonical_sha256")
    );

    let (content, commitment) = key_schedule(&data_key, &object_id, at).expect("derive");
    assert_eq!(hex(&content[..]), get(&v, "content_key"));
    assert_eq!(hex(&commitment), get(&v, "commitment"));
    let key = || ContentKey::for_new_object(&data_key, object_id, at).expect("derive");
    assert_eq!(hex(&key().header().to_bytes()), get(&v, "header"));

    let empty = seal_chunks(key(), b"", &[1]).concat();
    assert_eq!(hex(&empty), get(&v, "ciphertext_empty"));
    let short = seal_chunks(key(), text(&v, "plaintext_short").as_bytes(), &[1]).concat();
    assert_eq!(hex(&short), get(&v, "ciphertext_short"));

    let long_len: usize = get(&v, "plaintext_long_len").parse().expect("length");
    let long = seal_chunks(key(), &mod251(long_len), &[S]).concat();
    assert_eq!(long.len().to_string(), get(&v, "ciphertext_long_len"));
    assert_eq!(
        hex(&Sha256::digest(&long)),
        get(&v, "ciphertext_long_sha256")
    );
    let tag0 = &long[segment_start(1) - 16..segment_start(1)];
    assert_eq!(hex(tag0), get(&v, "ciphertext_long_segment0_tag"));
    assert_eq!(
        hex(&long[segment_start(1)..]),
        get(&v, "ciphertext_long_segment1")
    );

    // And they open again.
    let header = crate::crypto::format::Header::parse(&long).expect("header");
    let opener_key = ContentKey::for_header(&data_key, &header, at).expect("commitment");
    let plan = OpenPlan::whole(long.len() as u64).expect("plan");
    let opened = open_pieces(opener_key, plan, &long, &[1000]);
    assert_eq!(opened.result, Ok(()));
    assert!(opened.out == mod251(long_len));
}

/// Prints the vectors for the document: `cargo test print_vectors -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_vectors() {
    let data_key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let object_id = ObjectId(std::array::from_fn(|i| 0xa0 + i as u8));
    let at = ObjectLocation {
        bucket: "gatehouse-data",
        key: "shares/demo/report.csv",
    };
    let context = EncryptionContext::new("demo", at.bucket, at.key, object_id);
    println!("data_key: {}", hex(&data_key));
    println!("object_id: {}", object_id.to_hex());
    println!(
        "bucket: \"{}\"\ninternal_key: \"{}\"\nshare: \"demo\"",
        at.bucket, at.key
    );
    for (name, value) in context.pairs() {
        println!("{name}: \"{value}\"");
    }
    println!(
        "context_canonical_sha256: {}",
        hex(&Sha256::digest(context.canonical()))
    );
    let (content, commitment) = key_schedule(&data_key, &object_id, at).expect("derive");
    println!(
        "content_key: {}\ncommitment: {}",
        hex(&content[..]),
        hex(&commitment)
    );
    let key = || ContentKey::for_new_object(&data_key, object_id, at).expect("derive");
    println!("header: {}", hex(&key().header().to_bytes()));
    println!(
        "ciphertext_empty: {}",
        hex(&seal_chunks(key(), b"", &[1]).concat())
    );
    println!("plaintext_short: \"gatehouse\"");
    println!(
        "ciphertext_short: {}",
        hex(&seal_chunks(key(), b"gatehouse", &[1]).concat())
    );
    let long = seal_chunks(key(), &mod251(S + 1), &[S]).concat();
    println!(
        "plaintext_long_len: {}\nciphertext_long_len: {}",
        S + 1,
        long.len()
    );
    println!("ciphertext_long_sha256: {}", hex(&Sha256::digest(&long)));
    println!(
        "ciphertext_long_segment0_tag: {}",
        hex(&long[segment_start(1) - 16..segment_start(1)])
    );
    println!(
        "ciphertext_long_segment1: {}",
        hex(&long[segment_start(1)..])
    );
}
