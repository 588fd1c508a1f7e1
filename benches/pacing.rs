//! Byte pacing through the running gateway: the measured transfer rate of a paced download
//! and upload against the configured `rate_limits.download` / `upload`.
//!
//! `cargo bench --bench pacing` prints, per rate and direction, the configured rate, the
//! measured steady-state rate and their ratio, and exits non-zero when a ratio is off by more
//! than 10 %. Under `cargo test` (no `--bench` argument) it only checks that a paced transfer
//! completes, without timing anything.
//!
//! The budget holds one second of bytes (the burst), so a transfer of `n` bytes at `r` bytes
//! per second should take `(n - r) / r` seconds; the measured rate is `(n - r) / elapsed`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{Gateway, Setup};

const MIB: u64 = 1024 * 1024;

async fn gateway(rate: &str) -> Gateway {
    let grants: &'static str = Box::leak(
        format!(
            "[rate_limits]\ndownload = \"{rate}\"\nupload = \"{rate}\"\n[[grants]]\nshare = \"exports\"\nprefix = \"\"\nactions = [\"read\", \"write\"]\n"
        )
        .into_boxed_str(),
    );
    Gateway::start(Setup {
        partners: vec![("paced", "active", grants)],
        ..Setup::default()
    })
    .await
}

/// Seconds to download and to upload `size` bytes at the partner's paced rate.
async fn measure(g: &Gateway, size: u64) -> (f64, f64) {
    g.store_put("paced.bin", vec![0x5a; size as usize], Default::default())
        .await;
    let t = g.token("paced").await;
    let start = Instant::now();
    let resp = g.get(&t, "/exports/paced.bin").await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let body = resp.bytes().await.unwrap();
    let down = start.elapsed().as_secs_f64();
    assert_eq!(body.len() as u64, size);

    let start = Instant::now();
    let resp = g
        .client
        .put(g.url("/exports/paced-up.bin"))
        .bearer_auth(&t)
        .body(vec![0xa5; size as usize])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let up = start.elapsed().as_secs_f64();
    (down, up)
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if !benchmarking {
            // Test mode: a paced transfer completes; no timing.
            let g = gateway("1MiB/s").await;
            measure(&g, MIB / 2).await;
            g.stop().await;
            return;
        }
        let mut worst: f64 = 0.0;
        println!(
            "{:<10} {:<9} {:>14} {:>14} {:>7}",
            "rate", "direction", "configured B/s", "measured B/s", "ratio"
        );
        for (rate, bytes_per_second, size) in [
            ("256KiB/s", 256 * 1024, 2 * MIB),
            ("1MiB/s", MIB, 6 * MIB),
            ("8MiB/s", 8 * MIB, 48 * MIB),
        ] {
            let g = gateway(rate).await;
            let (down, up) = measure(&g, size).await;
            g.stop().await;
            for (direction, secs) in [("download", down), ("upload", up)] {
                let measured = (size - bytes_per_second) as f64 / secs;
                let ratio = measured / bytes_per_second as f64;
                worst = worst.max((ratio - 1.0).abs());
                println!(
                    "{rate:<10} {direction:<9} {bytes_per_second:>14} {measured:>14.0} {ratio:>7.3}"
                );
            }
        }
        println!(
            "largest deviation from the configured rate: {:.1} %",
            worst * 100.0
        );
        if worst > 0.10 {
            eprintln!("pacing is off by more than 10 %");
            std::process::exit(1);
        }
    });
}
