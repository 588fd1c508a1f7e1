//! Audit overhead per event: serialise + hash-chain + write + group-committed fdatasync, on
//! the filesystem that holds the temp directory.
//!
//! `cargo bench --bench audit -- --warm-up-time 1 --measurement-time 5`
//!
//! - `ocsf_encode_one_event`: turning one request event into its OCSF record (done on the
//!   request's own task, not on the writer thread).
//! - `chain_one_line`: splicing the chain fields into one serialised event and hashing it
//!   (the CPU part the writer thread adds per record).
//! - `record_then_flush/1000`: 1000 events queued with `record`, then one `flush`: the
//!   writer's batches share syncs; the figure is the whole cost per event.
//! - `durable_concurrent/64`: 64 tasks each waiting for a `record_durable` confirmation at
//!   once, as 64 concurrent GETs do before their first byte: they share a few syncs.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatehouse::audit::chain::Head;
use gatehouse::audit::{Audit, Decision, Event, Kind};
use gatehouse::config::AuditConfig;

fn event(i: u64) -> Event {
    Event {
        time: jiff::Timestamp::now(),
        request_id: format!("01JBENCH{i:018}"),
        session_id: Some("s_01JBENCHSESSION0000000000".into()),
        partner: Some("acme".into()),
        client_ip: "203.0.113.7".into(),
        user_agent: Some("bench/1.0".into()),
        method: "GET".into(),
        path: "/exports/acme/reports/2026/q1.csv".into(),
        share: Some("exports".into()),
        key: Some("acme/reports/2026/q1.csv".into()),
        status: 200,
        decision: Decision::Allow,
        reason: "ok".into(),
        bytes_out: 48_213,
        duration_ms: 1.7,
        ..Event::blank(Kind::Request)
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = AuditConfig {
        max_file_size: 1 << 30,
        ..AuditConfig::at(dir.path().join("audit"))
    };
    let audit = Audit::open(&cfg).unwrap();
    let body = gatehouse::audit::ocsf::encode_event(&event(0)).unwrap();

    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ocsf_encode_one_event", |b| {
        let ev = event(0);
        b.iter(|| gatehouse::audit::ocsf::encode_event(&ev).unwrap());
    });
    g.bench_function("chain_one_line", |b| {
        let mut head = Head::genesis();
        b.iter(|| head.append(&body, "audit-bench.jsonl"));
    });

    g.throughput(Throughput::Elements(1000));
    g.bench_function("record_then_flush/1000", |b| {
        b.iter(|| {
            for i in 0..1000 {
                audit.record(&event(i));
            }
            rt.block_on(audit.flush()).unwrap();
        });
    });

    g.throughput(Throughput::Elements(64));
    g.bench_function("durable_concurrent/64", |b| {
        b.iter(|| {
            rt.block_on(async {
                let waits = (0..64).map(|i| {
                    let audit = audit.clone();
                    tokio::spawn(async move { audit.record_durable(&event(i)).await })
                });
                for w in futures_util::future::join_all(waits).await {
                    w.unwrap().unwrap();
                }
            });
        });
    });
    g.finish();
    rt.block_on(audit.close()).unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
