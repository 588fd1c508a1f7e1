//! Profiles with `tokenize_fpe` (the FF1 key from `[dlp] fpe_key_file`, unwrapped by the key
//! service; the partner id as tweak; `gatehouse dlp detokenize` reverses it for that partner
//! only) and with CSV column and JSON path rules, end to end through the gateway.

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse::crypto::LocalKeyService;
use gatehouse::dlp::FpeKeyFile;

use super::*;

const RULE_PARTNERS: &[(&str, &str, &str)] = &[
    (
        "acme",
        "active",
        "[[grants]]\nshare = \"exports\"\nactions = [\"read\", \"write\"]\n",
    ),
    (
        "beta",
        "active",
        "[[grants]]\nshare = \"exports\"\nactions = [\"read\"]\n",
    ),
];

/// A local key-encryption-key file and an FPE key file wrapped by it, in `dir`.
async fn fpe_key(dir: &Path, kek_name: &str) -> (PathBuf, PathBuf) {
    let kek = dir.join(kek_name);
    let service = LocalKeyService::open_or_create(&kek).unwrap();
    let (file, _) = FpeKeyFile::create(&service, None, "cards-test")
        .await
        .unwrap();
    let path = dir.join(format!("fpe-{kek_name}"));
    file.save(&path).unwrap();
    (kek, path)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

async fn start_with(gateway: String, profile: &str, backend: Backend) -> Gateway {
    Gateway::start(Setup {
        backend,
        partners: RULE_PARTNERS.to_vec(),
        gateway_extra: leak(format!("{}{gateway}", common::LOOSE_TOKEN_LIMITS)),
        exports_extra: leak(format!("dlp_profile = \"{profile}\"")),
        ..Setup::default()
    })
    .await
}

fn fpe_profile(kek: &Path, fpe: &Path, kms_endpoint: Option<&str>) -> String {
    let service = match kms_endpoint {
        None => format!("type = \"local\"\nfile = \"{}\"", kek.display()),
        Some(url) => format!(
            "type = \"kms\"\nregion = \"us-east-1\"\nendpoint_url = \"{url}\"\nkey_id = \"alias/none\""
        ),
    };
    format!(
        r#"
[dlp]
fpe_key_file = "{}"
[key_service]
{service}
[dlp.profiles.cards]
default_action = "mask"
[dlp.profiles.cards.actions]
CREDIT_CARD = "tokenize_fpe"
"#,
        fpe.display()
    )
}

/// The `card` cell (5th column) of each data row.
fn cards(csv: &str) -> Vec<String> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().to_owned())
        .collect()
}

/// `gatehouse dlp scan --config ... ARGS INPUT`: (exit code, stdout, stderr).
fn scan(g: &Gateway, args: &[&str], input: &str) -> (i32, String, String) {
    let file = g.dir.path().join(format!("scan-input-{}", args.join("-")));
    let file = file.with_extension(if input.starts_with('{') {
        "ndjson"
    } else {
        "csv"
    });
    std::fs::write(&file, input).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["dlp", "scan", "--config"])
        .arg(&g.config_path)
        .args(args)
        .arg(&file)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        out.status.code().unwrap(),
        text(out.stdout),
        text(out.stderr),
    )
}

fn detokenize(kek: &Path, fpe: &Path, partner: &str, token: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["dlp", "detokenize", "--local-kek"])
        .arg(kek)
        .arg("--key")
        .arg(fpe)
        .args(["--partner", partner, token])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_fpe_uses_the_partner_as_tweak_and_only_the_owner_reverses_it() {
    let keys = tempfile::tempdir().unwrap();
    let (kek, fpe) = fpe_key(keys.path(), "kek.json").await;
    let g = start_with(fpe_profile(&kek, &fpe, None), "cards", Backend::Fs).await;
    let acme = g.token("acme").await;
    assert_eq!(
        put(&g, &acme, "customers.csv", CUSTOMERS, "text/csv")
            .await
            .status(),
        200
    );
    let r = g.get(&acme, "/exports/customers.csv").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-gatehouse-dlp"), Some("transformed"));
    // FF1 keeps the length, so the length is known.
    let length = header(&r, "content-length").map(str::to_owned);
    assert_eq!(length, Some(CUSTOMERS.len().to_string()));
    let body = r.text().await.unwrap();
    assert_no_secrets(&body);
    let originals = cards(CUSTOMERS);
    let for_acme = cards(&body);
    for (token, original) in for_acme.iter().zip(&originals) {
        assert_eq!(token.len(), original.len(), "{body}");
        assert_ne!(token, original);
        // Digits stay digits, the spaces stay where they were.
        for (t, o) in token.bytes().zip(original.bytes()) {
            assert_eq!(t.is_ascii_digit(), o.is_ascii_digit(), "{token} {original}");
        }
        assert_eq!(detokenize(&kek, &fpe, "acme", token), *original);
        assert_ne!(detokenize(&kek, &fpe, "beta", token), *original);
    }
    // Another partner gets other tokens for the same cards: no join across partners.
    let beta = g.token("beta").await;
    let for_beta = cards(
        &g.get(&beta, "/exports/customers.csv")
            .await
            .text()
            .await
            .unwrap(),
    );
    for ((b, a), original) in for_beta.iter().zip(&for_acme).zip(&originals) {
        assert_ne!(b, a);
        assert_eq!(detokenize(&kek, &fpe, "beta", b), *original);
    }

    // `dlp scan` with the gateway's config, profile and partner gives what the partner got.
    let (code, out, _) = scan(&g, &["--profile", "cards", "--partner", "acme"], CUSTOMERS);
    assert_eq!((code, cards(&out)), (0, for_acme.clone()));
    let (code, _, err) = scan(&g, &["--profile", "cards"], CUSTOMERS);
    assert_eq!(code, 64);
    assert!(err.contains("give --partner"), "{err}");

    // A key file the configured key service cannot unwrap is refused at reload; the key in
    // force stays.
    let (_, other) = fpe_key(keys.path(), "other-kek.json").await;
    std::fs::copy(&other, &fpe).unwrap();
    let err = g.live.reload().await.unwrap_err().to_string();
    assert!(err.contains("FPE key file"), "{err}");
    let again = g.get(&acme, "/exports/customers.csv").await;
    assert_eq!(cards(&again.text().await.unwrap()), for_acme);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_fpe_refuses_requests_while_the_key_service_does_not_answer() {
    let keys = tempfile::tempdir().unwrap();
    let (kek, fpe) = fpe_key(keys.path(), "kek.json").await;
    // A KMS endpoint where nothing listens: the gateway starts, requests needing the key fail.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let g = start_with(fpe_profile(&kek, &fpe, Some(&url)), "cards", Backend::Fs).await;
    let acme = g.token("acme").await;
    g.store_put("customers.csv", CUSTOMERS.into(), BTreeMap::new())
        .await;
    let r = g.get(&acme, "/exports/customers.csv").await;
    assert_eq!(r.status(), 503);
    let id = request_id(&r);
    let body = r.text().await.unwrap();
    assert_eq!(s3_code(&body), "ServiceUnavailable");
    assert_no_secrets(&body);
    assert_eq!(g.audit_event(&id).await["reason"], "dlp_key_unavailable");
}

const RULES: &str = r#"
[dlp.profiles.rules]
detectors = ["email"]
default_action = "mask"
columns = { ssn = "mask" }
fields = { "customer.ssn" = "redact", "$.items[*].note" = "redact" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_and_path_rules_transform_whole_cells_and_fields() {
    let g = start_with(RULES.to_owned(), "rules", Backend::Fs).await;
    let acme = g.token("acme").await;
    // The `ssn` column holds values no detector runs for here (only `email` runs), some not
    // even SSN-shaped: the rule masks every cell of it, and only of it.
    let csv = "id,name,ssn,email\n1,Ada,536-22-8845,ada@example.com\n2,Ben,unknown,ben@example.org\n3,\"Cy, Jr\",\"12 34\",x\n";
    put(&g, &acme, "people.csv", csv, "text/csv").await;
    let body = g
        .get(&acme, "/exports/people.csv")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        body,
        "id,name,ssn,email\n1,Ada,***-**-****,***@*******.***\n2,Ben,*******,***@*******.***\n3,\"Cy, Jr\",\"** **\",x\n"
    );

    let ndjson = concat!(
        r#"{"customer":{"name":"Ada","ssn":"536-22-8845"},"items":[{"note":"call me"},{"sku":7}]}"#,
        "\n",
        r#"{"customer":{"ssn":123456789},"other":{"ssn":"keep"},"contact":"ben@example.org"}"#,
        "\n"
    );
    put(&g, &acme, "events.ndjson", ndjson, "application/x-ndjson").await;
    let r = g.get(&acme, "/exports/events.ndjson").await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(lines[0]["customer"]["ssn"], "[REDACTED:FIELD]");
    assert_eq!(lines[0]["customer"]["name"], "Ada");
    assert_eq!(lines[0]["items"][0]["note"], "[REDACTED:FIELD]");
    assert_eq!(lines[0]["items"][1]["sku"], 7);
    // A number under the path becomes a string; the same key elsewhere is left alone.
    assert_eq!(lines[1]["customer"]["ssn"], "[REDACTED:FIELD]");
    assert_eq!(lines[1]["other"]["ssn"], "keep");
    assert_eq!(lines[1]["contact"], "***@*******.***");

    // `dlp scan --config --profile` runs the same profile; without `--profile` the built-in
    // `default` profile (every detector of the config's pack, mask) runs instead.
    let (code, out, err) = scan(&g, &["--profile", "rules"], ndjson);
    assert_eq!((code, out.as_str()), (0, body.as_str()), "{err}");
    let (code, out, _) = scan(&g, &[], csv);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "id,name,ssn,email\n1,Ada,***-**-****,***@*******.***\n2,Ben,unknown,***@*******.***\n3,\"Cy, Jr\",\"12 34\",x\n"
    );
    let (code, _, err) = scan(&g, &["--profile", "nope"], csv);
    assert_eq!(code, 64);
    assert!(err.contains("no DLP profile \"nope\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_without_a_header_takes_column_rules_by_position() {
    let gateway = r#"
[dlp.profiles.headless]
detectors = ["email"]
csv = { has_header = false }
columns = { "2" = "redact" }
"#;
    let g = start_with(gateway.to_owned(), "headless", Backend::Fs).await;
    let acme = g.token("acme").await;
    // No header: the first record is data like the others, its second cell included.
    let csv = "ada@example.com,536-22-8845,x
ben,412-35-7719,y
";
    put(&g, &acme, "raw.csv", csv, "text/csv").await;
    let body = g.get(&acme, "/exports/raw.csv").await.text().await.unwrap();
    assert_eq!(
        body,
        "***@*******.***,[REDACTED:FIELD],x\nben,[REDACTED:FIELD],y\n"
    );
}
