//! The operator and partner commands as a user runs them: the shipped embedded default
//! (`gatehouse serve` on a copy of `config/`), `gatehouse token --profile` on the generated
//! demo profile, and `gatehouse check` with good and broken configurations.

use std::path::Path;
use std::process::{Command, Stdio};

fn gatehouse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
}

/// Copies the shipped `config/` into `root/config`, moved to a free port.
fn copy_shipped_config(root: &Path) -> u16 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    std::fs::create_dir_all(root.join("config/partners")).unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let main = std::fs::read_to_string(src.join("gatehouse.toml"))
        .unwrap()
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9901", &admin.to_string());
    std::fs::write(root.join("config/gatehouse.toml"), main).unwrap();
    let patterns = Path::new(env!("CARGO_MANIFEST_DIR")).join("dlp-patterns");
    std::fs::create_dir_all(root.join("dlp-patterns")).unwrap();
    for entry in std::fs::read_dir(patterns).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            root.join("dlp-patterns").join(entry.file_name()),
        )
        .unwrap();
    }
    for entry in std::fs::read_dir(src.join("partners")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "toml") {
            std::fs::copy(
                entry.path(),
                root.join("config/partners").join(entry.file_name()),
            )
            .unwrap();
        }
    }
    port
}

#[test]
fn quickstart_on_the_shipped_config() {
    let root = tempfile::tempdir().unwrap();
    let port = copy_shipped_config(root.path());
    let config = root.path().join("config/gatehouse.toml");
    let log = std::fs::File::create(root.path().join("serve.log")).unwrap();
    let mut child = gatehouse()
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let up = (0..400).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(
        up,
        "serve did not start: {}",
        std::fs::read_to_string(root.path().join("serve.log")).unwrap()
    );

    // Everything the quickstart promises was created under data/.
    let data = root.path().join("data");
    for f in [
        "tls/ca.pem",
        "tls/server.pem",
        "keys/token-signing-gw-1.pem",
        "dev/demo-partner.json",
        "dev/demo-partner.key.pem",
    ] {
        assert!(data.join(f).exists(), "{f}");
    }
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("dev/demo-partner.json")).unwrap())
            .unwrap();
    for k in ["endpoint", "partner", "external_id", "key_file", "ca_file"] {
        assert!(profile.get(k).is_some(), "profile lacks {k}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("dev/demo-partner.key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "private keys are not readable by others");

    let out = gatehouse()
        .args(["token", "--profile"])
        .arg(data.join("dev/demo-partner.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.split('.').count(), 3, "only the token on stdout");
    let out = gatehouse()
        .args(["token", "--json", "--profile"])
        .arg(data.join("dev/demo-partner.json"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["token_type"], "Bearer");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ca = std::fs::read(data.join("tls/ca.pem")).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap();
        let resp = client
            .get(format!("https://127.0.0.1:{port}/demo/hello.txt"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.text()
                .await
                .unwrap()
                .starts_with("Hello from gatehouse")
        );
        let resp = client
            .put(format!("https://127.0.0.1:{port}/demo/upload.txt"))
            .bearer_auth(&token)
            .body("hi")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    });

    // The demo share is envelope-encrypted: no stored file holds the plaintext.
    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out)
            } else {
                out.push(p)
            }
        }
    }
    let mut stored = Vec::new();
    files(&data.join("objects"), &mut stored);
    assert!(stored.len() >= 2, "{stored:?}");
    for f in stored {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(16).any(|w| w == b"Hello from gateh"),
            "{} holds plaintext",
            f.display()
        );
    }

    // `check` accepts the running configuration.
    let out = gatehouse()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    // A broken detector file is reported by `check` with its file and line.
    let bad = root.path().join("dlp-patterns/zz-broken.toml");
    std::fs::write(
        &bad,
        "[[detector]]\nid = \"broken\"\nentity = \"X\"\nregex = \"(unclosed\"\nmax_len = 10\n",
    )
    .unwrap();
    let out = gatehouse()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zz-broken.toml:"), "{err}");
    std::fs::remove_file(&bad).unwrap();

    // A broken partner file: every error reported at once with file and line, exit 64.
    let demo = root.path().join("config/partners/demo.toml");
    let text = std::fs::read_to_string(&demo).unwrap();
    let broken = text.replace(
        "max_session = \"1h\"",
        "max_session = \"forever\"\nallowed_cidrs = [\"0.0.0.0/0\"]",
    );
    std::fs::write(&demo, broken).unwrap();
    let out = gatehouse()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("demo.toml:"), "{err}");
    assert!(
        err.contains("allowed_cidrs") || err.contains("forever"),
        "{err}"
    );
    // serve refuses the same configuration with the same code.
    let out = gatehouse()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn token_command_reports_refusals_without_secrets() {
    let root = tempfile::tempdir().unwrap();
    let profile = root.path().join("p.json");
    std::fs::write(&profile, r#"{"endpoint":"https://127.0.0.1:1","partner":"x","external_id":"secret-external-id-123","key_file":"missing.pem"}"#).unwrap();
    let out = gatehouse()
        .args(["token", "--profile"])
        .arg(&profile)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.pem"), "{err}");
    assert!(!err.contains("secret-external-id-123"), "{err}");
}

/// The container image's configuration is the embedded default with paths one level deeper,
/// partners from `config/partners/` and the listener on all interfaces: nothing else differs.
#[test]
fn the_container_config_follows_the_shipped_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("config/gatehouse.toml")).unwrap();
    let container = std::fs::read_to_string(root.join("config/container/gatehouse.toml")).unwrap();
    let body = |text: &str| -> String {
        text.lines()
            .skip_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let expected = body(&shipped)
        .replace("\"../", "\"../../")
        .replace(
            "partners_dir = \"partners\"",
            "partners_dir = \"../partners\"",
        )
        .replace("addr = \"127.0.0.1:8443\"", "addr = \"0.0.0.0:8443\"");
    assert_eq!(
        body(&container),
        expected,
        "regenerate config/container/gatehouse.toml from config/gatehouse.toml"
    );
}
