//! Lockout after repeated failed client assertions, per (partner, client IP).
//!
//! Takes failures and successes reported by the token endpoint; gives, on [`Lockout::check`],
//! whether the pair is locked and for how long yet. `lockout_after` failures within
//! `lockout_window` lock that pair for `lockout_for` (counted from the failure that locked
//! it); a success clears the pair. Keyed by the pair, so a stranger failing from their own
//! address never locks the partner out elsewhere. IPv6 clients count per /64.
//!
//! Memory is bounded: at most [`MAX_PAIRS`] pairs are tracked; when full, pairs with no
//! recent failure and no active lock are forgotten first, and if none can be, a new pair's
//! failure is not recorded (its per-IP rate limit still applies).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use governor::clock::Reference;
use parking_lot::Mutex;

use super::{Limit, RateLimited, Sleep};
use crate::config::TokenLimits;

/// Most (partner, client IP) pairs tracked at once.
pub const MAX_PAIRS: usize = 65_536;

/// The client address a limit is counted against: the IPv4 address, or the /64 of an IPv6
/// address (one subscriber usually holds a whole /64). IPv4-mapped IPv6 counts as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpKey(IpAddr);

impl IpKey {
    pub fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    IpKey(IpAddr::V6(Ipv6Addr::from(bits)))
                }
            },
        }
    }
}

#[derive(Default)]
struct Pair {
    /// Times of the failures inside the window, oldest first.
    failures: VecDeque<Duration>,
    locked_until: Option<Duration>,
}

/// The lockout tracker. Times are kept as durations since the tracker was made.
pub struct Lockout<C: Sleep> {
    settings: TokenLimits,
    clock: C,
    epoch: C::Instant,
    pairs: Mutex<HashMap<(String, IpKey), Pair>>,
}

impl<C: Sleep> Lockout<C> {
    pub fn new(settings: TokenLimits, clock: C) -> Self {
        Lockout {
            settings,
            epoch: clock.now(),
            clock,
            pairs: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn settings(&self) -> TokenLimits {
        self.settings
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.clock.now().duration_since(self.epoch).as_u64())
    }

    /// `Err` while (partner, ip) is locked out, with the time left. Check before verifying
    /// an assertion, so a locked pair costs no signature check.
    pub fn check(&self, partner: &str, ip: IpAddr) -> Result<(), RateLimited> {
        let now = self.now();
        let mut pairs = self.pairs.lock();
        let key = (partner.to_owned(), IpKey::of(ip));
        let Some(pair) = pairs.get_mut(&key) else {
            return Ok(());
        };
        match pair.locked_until {
            Some(until) if now < until => Err(RateLimited {
                limit: Limit::Lockout,
                retry_after: until - now,
            }),
            Some(_) => {
                pairs.remove(&key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a failed assertion; `Err` when this failure locks the pair.
    pub fn record_failure(&self, partner: &str, ip: IpAddr) -> Result<(), RateLimited> {
        let now = self.now();
        let s = self.settings;
        let mut pairs = self.pairs.lock();
        let key = (partner.to_owned(), IpKey::of(ip));
        if !pairs.contains_key(&key) && pairs.len() >= MAX_PAIRS {
            let window = s.lockout_window;
            pairs.retain(|_, p| p.is_active(now, window));
            if pairs.len() >= MAX_PAIRS {
                tracing::warn!(
                    pairs = MAX_PAIRS,
                    "lockout table full; failure not recorded"
                );
                return Ok(());
            }
        }
        let pair = pairs.entry(key).or_default();
        while pair
            .failures
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= s.lockout_window)
        {
            pair.failures.pop_front();
        }
        pair.failures.push_back(now);
        if pair.failures.len() >= usize::try_from(s.lockout_after).unwrap_or(usize::MAX) {
            pair.failures.clear();
            pair.locked_until = Some(now + s.lockout_for);
            return Err(RateLimited {
                limit: Limit::Lockout,
                retry_after: s.lockout_for,
            });
        }
        Ok(())
    }

    /// Records a successful assertion: the pair's failures are forgotten.
    pub fn record_success(&self, partner: &str, ip: IpAddr) {
        self.pairs
            .lock()
            .remove(&(partner.to_owned(), IpKey::of(ip)));
    }

    /// Pairs tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.pairs.lock().len()
    }
}

impl Pair {
    fn is_active(&self, now: Duration, window: Duration) -> bool {
        self.locked_until.is_some_and(|u| now < u)
            || self
                .failures
                .back()
                .is_some_and(|t| now.saturating_sub(*t) < window)
    }
}
