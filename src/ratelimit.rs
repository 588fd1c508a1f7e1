//! Rate limits: requests per second with burst, concurrent requests, byte pacing, the token
//! endpoint's per-IP limit and the failed-assertion lockout.
//!
//! Takes the validated [`Config`] (partner and grant `rate_limits`, `[token_limits]`) and a
//! governor [`Clock`]; gives [`Limiters`], built once per configuration and shared by every
//! connection. Over a limit, a call fails with [`RateLimited`] holding a retry-after
//! duration (map it to 503 `SlowDown` with `Retry-After`; at the token endpoint to 429).
//! Byte rates never refuse: [`Pacing::acquire`] waits until the bytes may go. Everything is
//! generic over the clock, so tests run on governor's `FakeRelativeClock`, whose
//! [`Sleep`] advances the fake time instead of waiting: exact and instant.
//!
//! State lives in this process only (see docs/policy.md for several replicas).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, FakeRelativeClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, PartnerConfig, RateLimits, RequestRate, TokenLimits};

mod lockout;
mod pacing;
#[cfg(test)]
mod tests;

pub use lockout::{IpKey, Lockout};
pub use pacing::{Pacer, Pacing};

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The partner's or grant's requests per second.
    Requests,
    /// The partner's or grant's concurrent requests.
    Concurrency,
    /// Token endpoint requests from one client IP.
    TokenEndpoint,
    /// Too many failed client assertions for one (partner, client IP).
    Lockout,
}

/// A request over a limit; ask again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} (retry after {retry_after:?})", self.reason())]
pub struct RateLimited {
    pub limit: Limit,
    pub retry_after: Duration,
}

impl RateLimited {
    /// The audit reason code. All of these are session level: they may be shown.
    pub fn reason(&self) -> &'static str {
        match self.limit {
            Limit::Requests => "rate_limited",
            Limit::Concurrency => "concurrency_limited",
            Limit::TokenEndpoint => "token_rate_limited",
            Limit::Lockout => "locked_out",
        }
    }

    /// `retry_after` in whole seconds, rounded up, at least 1: the `Retry-After` value.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// A clock that can also wait. On the real clock it sleeps (tokio); on governor's
/// `FakeRelativeClock` it advances the fake time and returns at once.
pub trait Sleep: Clock + Clone + Send + Sync + 'static {
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;
}

impl Sleep for DefaultClock {
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

impl Sleep for FakeRelativeClock {
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        self.advance(d);
        std::future::ready(())
    }
}

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Keyed<K, C> =
    RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

fn quota(r: RequestRate) -> Quota {
    let burst = NonZeroU32::new(r.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(r.rate.period())
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

/// A request-rate limiter with its clock (for the retry-after).
struct Requests<C: Sleep> {
    limiter: Direct<C>,
    clock: C,
}

impl<C: Sleep> Requests<C> {
    fn new(rate: RequestRate, clock: &C) -> Self {
        Requests {
            limiter: RateLimiter::direct_with_clock(quota(rate), clock.clone()),
            clock: clock.clone(),
        }
    }

    fn check(&self, limit: Limit) -> Result<(), RateLimited> {
        self.limiter.check().map_err(|not_until| RateLimited {
            limit,
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }
}

/// A request let through: hold it until the response body has ended (its concurrency
/// permits are released on drop), and pace the body with `download` / `upload`.
pub struct Admission<C: Sleep = DefaultClock> {
    _permits: Vec<OwnedSemaphorePermit>,
    pub download: Pacing<C>,
    pub upload: Pacing<C>,
}

/// The limiters of one partner or one grant.
struct Bucket<C: Sleep> {
    settings: RateLimits,
    requests: Option<Requests<C>>,
    concurrent: Option<Arc<Semaphore>>,
    download: Option<Arc<Pacer<C>>>,
    upload: Option<Arc<Pacer<C>>>,
}

impl<C: Sleep> Bucket<C> {
    fn new(settings: RateLimits, clock: &C) -> Self {
        let pacer = |rate: Option<u64>| rate.map(|r| Arc::new(Pacer::new(r, clock.clone())));
        Bucket {
            settings,
            requests: settings.requests.map(|r| Requests::new(r, clock)),
            concurrent: settings
                .concurrent
                .map(|n| Arc::new(Semaphore::new(usize::try_from(n).unwrap_or(usize::MAX)))),
            download: pacer(settings.download),
            upload: pacer(settings.upload),
        }
    }
}

/// Token endpoint requests per client IP (IPv6 per /64).
struct TokenRate<C: Sleep> {
    settings: RequestRate,
    limiter: Keyed<IpKey, C>,
    clock: C,
    checks: AtomicU64,
}

/// Forget fully refilled per-IP entries every this many token requests.
const SWEEP_EVERY: u64 = 1024;

/// Partner id, share, grant prefix.
type GrantKey = (String, String, String);

/// Every limiter of one configuration.
pub struct Limiters<C: Sleep = DefaultClock> {
    clock: C,
    partners: HashMap<String, Arc<Bucket<C>>>,
    grants: HashMap<GrantKey, Arc<Bucket<C>>>,
    token_rate: Arc<TokenRate<C>>,
    lockout: Arc<Lockout<C>>,
}

impl Limiters<DefaultClock> {
    /// The limiters of `cfg` on the real clock.
    pub fn new(cfg: &Config) -> Self {
        Limiters::with_clock(cfg, DefaultClock::default())
    }
}

impl<C: Sleep> Limiters<C> {
    pub fn with_clock(cfg: &Config, clock: C) -> Self {
        Limiters::for_partners(cfg.partners.values(), cfg.token_limits, clock)
    }

    /// The limiters of these partners and token limits.
    pub fn for_partners<'a>(
        partners: impl IntoIterator<Item = &'a PartnerConfig>,
        t: TokenLimits,
        clock: C,
    ) -> Self {
        let token_rate = Arc::new(TokenRate::new(t.per_ip, &clock));
        let lockout = Arc::new(Lockout::new(t, clock.clone()));
        Limiters::build(partners, clock, token_rate, lockout, |_| None)
    }

    /// The limiters of a new configuration. Budgets, in-flight permits and lockouts carry
    /// over wherever the settings did not change; limiters whose settings changed start full.
    pub fn reload(&self, cfg: &Config) -> Self {
        self.reload_partners(cfg.partners.values(), cfg.token_limits)
    }

    /// [`Limiters::reload`] from parts.
    pub fn reload_partners<'a>(
        &self,
        partners: impl IntoIterator<Item = &'a PartnerConfig>,
        t: TokenLimits,
    ) -> Self {
        let token_rate = if self.token_rate.settings == t.per_ip {
            Arc::clone(&self.token_rate)
        } else {
            Arc::new(TokenRate::new(t.per_ip, &self.clock))
        };
        let lockout = if self.lockout.settings() == t {
            Arc::clone(&self.lockout)
        } else {
            Arc::new(Lockout::new(t, self.clock.clone()))
        };
        Limiters::build(partners, self.clock.clone(), token_rate, lockout, |key| {
            match key {
                Key::Partner(id) => self.partners.get(id),
                Key::Grant(k) => self.grants.get(k),
            }
            .cloned()
        })
    }

    fn build<'a>(
        partners_cfg: impl IntoIterator<Item = &'a PartnerConfig>,
        clock: C,
        token_rate: Arc<TokenRate<C>>,
        lockout: Arc<Lockout<C>>,
        old: impl Fn(Key<'_>) -> Option<Arc<Bucket<C>>>,
    ) -> Self {
        let bucket = |key: Key<'_>, settings: RateLimits| match old(key) {
            Some(b) if b.settings == settings => b,
            _ => Arc::new(Bucket::new(settings, &clock)),
        };
        let mut partners = HashMap::new();
        let mut grants = HashMap::new();
        for p in partners_cfg {
            if !p.rate_limits.is_unlimited() {
                let b = bucket(Key::Partner(&p.id), p.rate_limits);
                partners.insert(p.id.clone(), b);
            }
            for g in p.grants.iter().filter(|g| !g.rate_limits.is_unlimited()) {
                let key = (p.id.clone(), g.share.clone(), g.prefix.clone());
                let b = bucket(Key::Grant(&key), g.rate_limits);
                grants.insert(key, b);
            }
        }
        Limiters {
            clock,
            partners,
            grants,
            token_rate,
            lockout,
        }
    }

    /// Lets a data request of `partner`, allowed by `partner.grants[grant]`, through the
    /// partner's and the grant's concurrency and request-rate limits. A refused request still
    /// counts against the limits it passed before the one that refused it.
    pub fn admit(
        &self,
        partner: &PartnerConfig,
        grant: Option<usize>,
    ) -> Result<Admission<C>, RateLimited> {
        let grant_bucket = grant.and_then(|i| partner.grants.get(i)).and_then(|g| {
            let key = (partner.id.clone(), g.share.clone(), g.prefix.clone());
            self.grants.get(&key)
        });
        let buckets: Vec<&Arc<Bucket<C>>> = self
            .partners
            .get(&partner.id)
            .into_iter()
            .chain(grant_bucket)
            .collect();
        let mut permits = Vec::new();
        for sem in buckets.iter().filter_map(|b| b.concurrent.as_ref()) {
            let permit = Arc::clone(sem)
                .try_acquire_owned()
                .map_err(|_| RateLimited {
                    limit: Limit::Concurrency,
                    retry_after: Duration::from_secs(1),
                })?;
            permits.push(permit);
        }
        for r in buckets.iter().filter_map(|b| b.requests.as_ref()) {
            r.check(Limit::Requests)?;
        }
        let pacing = |pick: fn(&Bucket<C>) -> &Option<Arc<Pacer<C>>>| Pacing {
            pacers: buckets.iter().filter_map(|b| pick(b).clone()).collect(),
        };
        Ok(Admission {
            _permits: permits,
            download: pacing(|b| &b.download),
            upload: pacing(|b| &b.upload),
        })
    }

    /// Lets one token endpoint request from `ip` through the per-IP limit.
    pub fn token_request(&self, ip: IpAddr) -> Result<(), RateLimited> {
        self.token_rate.check(ip)
    }

    /// The failed-assertion lockout of the token endpoint.
    pub fn lockout(&self) -> &Lockout<C> {
        &self.lockout
    }
}

enum Key<'a> {
    Partner(&'a str),
    Grant(&'a GrantKey),
}

impl<C: Sleep> TokenRate<C> {
    fn new(settings: RequestRate, clock: &C) -> Self {
        TokenRate {
            settings,
            limiter: RateLimiter::dashmap_with_clock(quota(settings), clock.clone()),
            clock: clock.clone(),
            checks: AtomicU64::new(0),
        }
    }

    fn check(&self, ip: IpAddr) -> Result<(), RateLimited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&IpKey::of(ip))
            .map_err(|not_until| RateLimited {
                limit: Limit::TokenEndpoint,
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }
}
