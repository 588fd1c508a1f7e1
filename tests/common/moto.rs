//! moto in server mode on loopback: S3 for the tests, never an in-process fake.
//!
//! Uses `GATEHOUSE_TEST_S3_ENDPOINT` when set (scripts/test.sh starts one moto for the whole
//! run); otherwise starts `moto_server` on a free port for this test process, watched by a
//! shell loop that stops it when the test process exits.

use std::sync::OnceLock;

static ENDPOINT: OnceLock<String> = OnceLock::new();

pub fn endpoint() -> String {
    ENDPOINT.get_or_init(init).clone()
}

fn init() -> String {
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ] {
        if std::env::var_os(k).is_none() {
            // Tests only; no other thread reads these variables before the first S3 client.
            unsafe { std::env::set_var(k, v) };
        }
    }
    if let Ok(e) = std::env::var("GATEHOUSE_TEST_S3_ENDPOINT") {
        return e;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let parent = std::process::id();
    let script = format!(
        "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null"
    );
    // The watcher shell outlives this call on purpose: it stops moto when the test process ends.
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .spawn()
        .expect("cannot start moto_server (pip install 'moto[server]')");
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return endpoint;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("moto_server did not start on port {port}; is moto[server] installed?");
}

pub async fn create_bucket(bucket: &str) {
    let store =
        gatehouse::store::s3::S3Store::new(Some("us-east-1"), Some(&endpoint()), true, bucket)
            .await
            .unwrap();
    store.create_bucket_if_missing().await.unwrap();
}

/// Creates a symmetric KMS key in moto and gives its id.
pub async fn create_kms_key() -> String {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .load()
        .await;
    let kms = aws_sdk_kms::Client::new(&conf);
    let out = kms
        .create_key()
        .description("gatehouse tests")
        .send()
        .await
        .unwrap();
    out.key_metadata().unwrap().key_id().to_string()
}
