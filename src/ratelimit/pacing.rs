//! Byte pacing: a transfer waits until its bytes fit a bytes-per-second budget.
//!
//! Takes a rate and a [`Sleep`] clock; gives a [`Pacer`] whose `acquire(n)` returns once `n`
//! more bytes may go, and [`Pacing`], the pacers of one request. Never refuses: a large `n`
//! is taken in pieces of at most one second's budget. On governor's fake clock the waiting
//! advances fake time, so tests measure the pacing exactly.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::{Quota, RateLimiter};

use super::{Direct, Sleep};

/// Paces a byte stream to a rate: [`Pacer::acquire`] waits until `n` more bytes may go.
/// The budget refills continuously and holds at most one second of bytes (the burst).
pub struct Pacer<C: Sleep = DefaultClock> {
    limiter: Direct<C>,
    clock: C,
    /// Bytes per governor cell, so that cells per second stay at most a million and the
    /// nanosecond period keeps the rate within 0.1 %.
    unit: u64,
    /// Cells per second, also the burst.
    burst: u32,
}

impl<C: Sleep> Pacer<C> {
    pub fn new(bytes_per_second: u64, clock: C) -> Self {
        let rate = bytes_per_second.max(1);
        let unit = rate.div_ceil(1_000_000);
        let cells = u32::try_from((rate / unit).max(1)).unwrap_or(u32::MAX);
        // Rounded up: the paced rate never exceeds the configured one.
        let period_ns = (1_000_000_000u128 * u128::from(unit)).div_ceil(u128::from(rate));
        let period = Duration::from_nanos(u64::try_from(period_ns).unwrap_or(u64::MAX));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(NonZeroU32::new(cells).unwrap_or(NonZeroU32::MIN));
        Pacer {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            unit,
            burst: cells,
        }
    }

    /// Waits until `bytes` may be sent. Never refuses: a large `bytes` is taken in pieces of
    /// at most one second's budget each.
    pub async fn acquire(&self, bytes: u64) {
        let mut left = bytes.div_ceil(self.unit);
        while left > 0 {
            let take = u32::try_from(left.min(u64::from(self.burst))).unwrap_or(self.burst);
            let n = NonZeroU32::new(take).unwrap_or(NonZeroU32::MIN);
            while let Ok(Err(not_until)) = self.limiter.check_n(n) {
                let wait = not_until.wait_time_from(self.clock.now());
                self.clock.sleep(wait).await;
            }
            left -= u64::from(take);
        }
    }
}

/// The byte pacers that apply to one request (partner's, then grant's).
#[derive(Clone)]
pub struct Pacing<C: Sleep = DefaultClock> {
    pub(super) pacers: Vec<Arc<Pacer<C>>>,
}

impl<C: Sleep> Pacing<C> {
    /// No byte rate applies: callers may skip pacing altogether.
    pub fn is_unlimited(&self) -> bool {
        self.pacers.is_empty()
    }

    /// Waits until `bytes` may pass every pacer.
    pub async fn acquire(&self, bytes: u64) {
        for p in &self.pacers {
            p.acquire(bytes).await;
        }
    }
}
