//! Memory stays flat with object size: the gateway runs as a child process (`gatehouse serve`,
//! exactly as an operator starts it), and its peak RSS (VmHWM, read from /proc) after moving
//! a 16 MiB object through PUT and GET is compared with the peak after a 256 MiB object.
//! Also exercises `gatehouse token --profile` and SIGTERM draining.

mod common;

use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use common::{Prepared, Setup};
use futures_util::StreamExt;

const MIB: u64 = 1024 * 1024;

struct ChildGateway {
    child: Child,
    prepared: Prepared,
}

impl ChildGateway {
    fn start(encrypt: bool) -> ChildGateway {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let setup = Setup {
            max_put_bytes: 2048 * MIB,
            encrypt,
            ..Setup::default()
        };
        let prepared = Prepared::write(&setup, port);
        let log = std::fs::File::create(prepared.dir.path().join("serve.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["serve", "--config"])
            .arg(&prepared.config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        for _ in 0..400 {
            if std::net::TcpStream::connect(prepared.addr).is_ok() {
                return ChildGateway { child, prepared };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "gatehouse serve did not start: {}",
            std::fs::read_to_string(prepared.dir.path().join("serve.log")).unwrap()
        );
    }

    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Gets a token through the partner-side CLI with a profile file.
    fn token(&self, id: &str) -> String {
        let p = &self.prepared.partners[id];
        let dir = self.prepared.dir.path();
        std::fs::write(dir.join("partner.key.pem"), &p.key_pem).unwrap();
        let profile = serde_json::json!({
            "endpoint": self.prepared.base,
            "partner": id,
            "external_id": p.external_id,
            "key_id": p.key_id,
            "key_file": "partner.key.pem",
            "ca_file": "config/data/tls/ca.pem",
        });
        std::fs::write(dir.join("profile.json"), profile.to_string()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["token", "--profile"])
            .arg(dir.join("profile.json"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn client(&self) -> reqwest::Client {
        let ca = std::fs::read_to_string(self.prepared.dir.path().join("config/data/tls/ca.pem"))
            .unwrap();
        common::client_for(&ca, false)
    }

    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "gatehouse serve must exit cleanly on SIGTERM: {exit:?}"
        );
    }
}

/// PUTs `size` bytes streamed in 1 MiB chunks, GETs them back streamed, checks length and a sample.
async fn round_trip(client: &reqwest::Client, base: &str, token: &str, key: &str, size: u64) {
    let chunk = Bytes::from((0..MIB).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let chunks = (0..size / MIB).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let resp = client
        .put(format!("{base}/exports/{key}"))
        .bearer_auth(token)
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let resp = client
        .get(format!("{base}/exports/{key}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let (mut total, mut first) = (0u64, None);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        first.get_or_insert_with(|| chunk.first().copied());
        total += chunk.len() as u64;
    }
    assert_eq!(total, size);
    assert_eq!(first.flatten(), Some(0));
}

async fn peak_memory_is_flat(encrypt: bool) {
    let gw = ChildGateway::start(encrypt);
    let token = gw.token("full");
    let client = gw.client();
    let base = gw.prepared.base.clone();
    round_trip(&client, &base, &token, "small.bin", 16 * MIB).await;
    let small = gw.peak_rss_kib();
    let big_mib: u64 = std::env::var("GATEHOUSE_MEMORY_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    round_trip(&client, &base, &token, "big.bin", big_mib * MIB).await;
    let big = gw.peak_rss_kib();
    let kind = if encrypt {
        "envelope-encrypted"
    } else {
        "plain"
    };
    eprintln!("peak RSS ({kind}): {small} KiB after 16 MiB, {big} KiB after {big_mib} MiB");
    let growth_kib = big.saturating_sub(small);
    assert!(
        growth_kib < 16 * 1024,
        "peak RSS grew by {growth_kib} KiB between 16 MiB and {big_mib} MiB objects"
    );
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_is_flat_in_object_size() {
    peak_memory_is_flat(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_is_flat_in_object_size_with_envelope_encryption() {
    peak_memory_is_flat(true).await;
}
