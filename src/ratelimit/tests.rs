//! Rate limits on governor's fake clock: exact, no sleeping.

use std::net::IpAddr;
use std::time::Duration;

use governor::clock::{Clock, FakeRelativeClock, Reference};

use super::*;
use crate::config::{ActionSet, Grant, PartnerStatus, Rate, TokenLimits};

fn rate(count: u32, per: Duration, burst: u32) -> RequestRate {
    RequestRate {
        rate: Rate { count, per },
        burst,
    }
}

fn per_second(count: u32, burst: u32) -> Option<RequestRate> {
    Some(rate(count, Duration::from_secs(1), burst))
}

/// Partner `acme` with `partner` limits and two grants: `s/a/` with `grant` limits, `s/b/`
/// with none.
fn acme(partner: RateLimits, grant: RateLimits) -> PartnerConfig {
    let g = |prefix: &str, rate_limits| Grant {
        share: "s".into(),
        prefix: prefix.into(),
        actions: ActionSet::default(),
        conditions: Default::default(),
        rate_limits,
        approved_by: None,
    };
    PartnerConfig {
        id: "acme".into(),
        display_name: String::new(),
        owner: String::new(),
        contract: String::new(),
        justification: String::new(),
        status: PartnerStatus::Active,
        review_by: None,
        valid_until: None,
        conditions: Default::default(),
        deny: vec![],
        rate_limits: partner,
        external_id: String::new(),
        max_session: Duration::from_secs(60),
        keys: vec![],
        federation: None,
        grants: vec![g("a/", grant), g("b/", RateLimits::default())],
        file: "acme.toml".into(),
    }
}

fn limiters(p: &PartnerConfig, clock: &FakeRelativeClock) -> Limiters<FakeRelativeClock> {
    Limiters::for_partners([p], TokenLimits::default(), clock.clone())
}

fn elapsed(clock: &FakeRelativeClock, since: <FakeRelativeClock as Clock>::Instant) -> Duration {
    Duration::from_nanos(clock.now().duration_since(since).as_u64())
}

fn refused(r: Result<Admission<FakeRelativeClock>, RateLimited>) -> RateLimited {
    match r {
        Ok(_) => panic!("expected a refusal"),
        Err(e) => e,
    }
}

#[test]
fn request_rate_allows_the_burst_then_refills_one_per_period() {
    let clock = FakeRelativeClock::default();
    let limits = RateLimits {
        requests: per_second(10, 3),
        ..Default::default()
    };
    let p = acme(limits, RateLimits::default());
    let l = limiters(&p, &clock);
    for _ in 0..3 {
        assert!(l.admit(&p, None).is_ok());
    }
    let e = refused(l.admit(&p, None));
    assert_eq!(e.limit, Limit::Requests);
    assert_eq!(e.reason(), "rate_limited");
    assert_eq!(e.retry_after, Duration::from_millis(100));
    assert_eq!(e.retry_after_secs(), 1);
    clock.advance(Duration::from_millis(99));
    assert!(l.admit(&p, None).is_err());
    clock.advance(Duration::from_millis(1));
    assert!(l.admit(&p, None).is_ok());
    assert!(l.admit(&p, None).is_err());
    // A full second refills the whole burst, no more.
    clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        assert!(l.admit(&p, None).is_ok());
    }
    assert!(l.admit(&p, None).is_err());
}

#[test]
fn grant_limits_apply_on_top_of_the_partner_and_only_to_that_grant() {
    let clock = FakeRelativeClock::default();
    let p = acme(
        RateLimits {
            requests: per_second(100, 100),
            ..Default::default()
        },
        RateLimits {
            requests: Some(rate(1, Duration::from_secs(60), 1)),
            ..Default::default()
        },
    );
    let l = limiters(&p, &clock);
    assert!(l.admit(&p, Some(0)).is_ok());
    let e = refused(l.admit(&p, Some(0)));
    assert_eq!(e.retry_after, Duration::from_secs(60));
    assert!(
        l.admit(&p, Some(1)).is_ok(),
        "the other grant is not limited"
    );
    assert!(l.admit(&p, None).is_ok());
}

#[test]
fn concurrency_permits_are_released_on_drop() {
    let clock = FakeRelativeClock::default();
    let p = acme(
        RateLimits {
            concurrent: Some(2),
            ..Default::default()
        },
        RateLimits {
            concurrent: Some(1),
            ..Default::default()
        },
    );
    let l = limiters(&p, &clock);
    let first = l.admit(&p, Some(0)).unwrap();
    let e = refused(l.admit(&p, Some(0)));
    assert_eq!(
        (e.limit, e.reason()),
        (Limit::Concurrency, "concurrency_limited")
    );
    let second = l.admit(&p, Some(1)).unwrap();
    assert_eq!(refused(l.admit(&p, Some(1))).limit, Limit::Concurrency);
    drop(first);
    let third = l.admit(&p, Some(0)).unwrap();
    drop((second, third));
    assert!(l.admit(&p, None).is_ok());
}

#[test]
fn refused_concurrency_does_not_spend_the_request_rate() {
    let clock = FakeRelativeClock::default();
    let p = acme(
        RateLimits {
            requests: per_second(1, 1),
            concurrent: Some(1),
            ..Default::default()
        },
        RateLimits::default(),
    );
    let l = limiters(&p, &clock);
    let held = l.admit(&p, None).unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(refused(l.admit(&p, None)).limit, Limit::Concurrency);
    drop(held);
    assert!(l.admit(&p, None).is_ok(), "the refill was not spent");
}

#[tokio::test]
async fn byte_pacing_sends_the_burst_then_exactly_the_rate() {
    let clock = FakeRelativeClock::default();
    let pacer = Pacer::new(1000, clock.clone());
    let start = clock.now();
    pacer.acquire(1000).await;
    assert_eq!(
        elapsed(&clock, start),
        Duration::ZERO,
        "one second of burst"
    );
    pacer.acquire(5000).await;
    assert_eq!(
        elapsed(&clock, start),
        Duration::from_secs(5),
        "split into cells"
    );
    pacer.acquire(1).await;
    assert_eq!(elapsed(&clock, start), Duration::from_millis(5001));
    pacer.acquire(0).await;
    assert_eq!(elapsed(&clock, start), Duration::from_millis(5001));
}

#[tokio::test]
async fn fast_byte_rates_stay_within_a_tenth_of_a_percent() {
    for bytes_per_second in [10 << 20, 1 << 30, 3_000_001] {
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::new(bytes_per_second, clock.clone());
        pacer.acquire(bytes_per_second).await; // the burst
        let start = clock.now();
        pacer.acquire(bytes_per_second * 10).await;
        let secs = elapsed(&clock, start).as_secs_f64();
        assert!((10.0..10.01).contains(&secs), "{bytes_per_second}: {secs}");
    }
}

#[tokio::test]
async fn admissions_carry_partner_and_grant_pacers() {
    let clock = FakeRelativeClock::default();
    let p = acme(
        RateLimits {
            download: Some(1000),
            ..Default::default()
        },
        RateLimits {
            download: Some(500),
            upload: Some(100),
            ..Default::default()
        },
    );
    let l = limiters(&p, &clock);
    let a = l.admit(&p, Some(0)).unwrap();
    let start = clock.now();
    a.download.acquire(2000).await;
    // Partner: 1000 burst + 1 s; grant: 500 burst + 3 s, taken while the partner waited.
    assert_eq!(elapsed(&clock, start), Duration::from_secs(4));
    assert!(!a.upload.is_unlimited());
    let other = l.admit(&p, Some(1)).unwrap();
    assert!(other.upload.is_unlimited());
}

#[test]
fn token_endpoint_limit_is_per_ip_and_per_ipv6_64() {
    let clock = FakeRelativeClock::default();
    let t = TokenLimits {
        per_ip: rate(1, Duration::from_secs(10), 2),
        ..TokenLimits::default()
    };
    let l: Limiters<FakeRelativeClock> = Limiters::for_partners([], t, clock.clone());
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(l.token_request(ip("192.0.2.1")).is_ok());
    assert!(l.token_request(ip("192.0.2.1")).is_ok());
    let e = l.token_request(ip("192.0.2.1")).unwrap_err();
    assert_eq!(
        (e.limit, e.reason()),
        (Limit::TokenEndpoint, "token_rate_limited")
    );
    assert_eq!(e.retry_after, Duration::from_secs(10));
    assert!(
        l.token_request(ip("::ffff:192.0.2.1")).is_err(),
        "mapped = same"
    );
    assert!(l.token_request(ip("192.0.2.2")).is_ok());
    assert!(l.token_request(ip("2001:db8::1")).is_ok());
    assert!(l.token_request(ip("2001:db8::2")).is_ok());
    assert!(l.token_request(ip("2001:db8::ffff:1")).is_err(), "same /64");
    assert!(l.token_request(ip("2001:db8:0:1::1")).is_ok(), "next /64");
    clock.advance(Duration::from_secs(10));
    assert!(l.token_request(ip("192.0.2.1")).is_ok());
}

#[test]
fn lockout_after_n_failures_within_the_window_then_expiry() {
    let clock = FakeRelativeClock::default();
    let t = TokenLimits {
        lockout_after: 3,
        lockout_window: Duration::from_secs(60),
        lockout_for: Duration::from_secs(300),
        ..TokenLimits::default()
    };
    let lock = Lockout::new(t, clock.clone());
    let me: IpAddr = "192.0.2.1".parse().unwrap();
    let stranger: IpAddr = "198.51.100.9".parse().unwrap();
    // Two failures, then the first leaves the window: no lockout.
    lock.record_failure("acme", me).unwrap();
    clock.advance(Duration::from_secs(30));
    lock.record_failure("acme", me).unwrap();
    clock.advance(Duration::from_secs(31));
    lock.record_failure("acme", me).unwrap();
    assert!(lock.check("acme", me).is_ok());
    // A third within the window locks the pair.
    let e = lock.record_failure("acme", me).unwrap_err();
    assert_eq!((e.limit, e.reason()), (Limit::Lockout, "locked_out"));
    let e = lock.check("acme", me).unwrap_err();
    assert_eq!(e.retry_after, Duration::from_secs(300));
    // A stranger's failures lock only the stranger; other partners from `me` are unaffected.
    for _ in 0..3 {
        let _ = lock.record_failure("acme", stranger);
    }
    assert!(lock.check("acme", stranger).is_err());
    assert!(lock.check("beta", me).is_ok());
    clock.advance(Duration::from_secs(299));
    assert_eq!(
        lock.check("acme", me).unwrap_err().retry_after,
        Duration::from_secs(1)
    );
    clock.advance(Duration::from_secs(1));
    assert!(lock.check("acme", me).is_ok());
    // A success forgets earlier failures.
    lock.record_failure("acme", me).unwrap();
    lock.record_failure("acme", me).unwrap();
    lock.record_success("acme", me);
    lock.record_failure("acme", me).unwrap();
    lock.record_failure("acme", me).unwrap();
    assert!(lock.check("acme", me).is_ok());
}

#[test]
fn reload_keeps_budgets_and_permits_whose_settings_did_not_change() {
    let clock = FakeRelativeClock::default();
    let limits = RateLimits {
        requests: per_second(1, 1),
        concurrent: Some(1),
        ..Default::default()
    };
    let p = acme(limits, RateLimits::default());
    let old = limiters(&p, &clock);
    let held = old.admit(&p, None).unwrap();
    old.lockout()
        .record_failure("acme", "192.0.2.1".parse().unwrap())
        .unwrap();
    let same = old.reload_partners([&p], TokenLimits::default());
    assert_eq!(refused(same.admit(&p, None)).limit, Limit::Concurrency);
    assert_eq!(same.lockout().tracked(), 1);
    drop(held);
    assert_eq!(refused(same.admit(&p, None)).limit, Limit::Requests);
    let changed = acme(
        RateLimits {
            requests: per_second(2, 2),
            ..limits
        },
        RateLimits::default(),
    );
    let fresh = same.reload_partners([&changed], TokenLimits::default());
    assert!(
        fresh.admit(&changed, None).is_ok(),
        "new settings start full"
    );
}

#[test]
fn limiters_and_admissions_can_be_shared_and_moved_into_bodies() {
    fn shared<T: Send + Sync>() {}
    fn sendable<T: Send>(_: &T) {}
    shared::<Limiters>();
    shared::<Admission>();
    let pacing: Pacing = Pacing { pacers: Vec::new() };
    sendable(&pacing.acquire(1));
}
