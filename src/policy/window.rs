//! Weekly time windows in IANA time zones.
//!
//! Takes a [`TimeWindow`] and an instant; gives whether the instant lies inside, and the
//! interval of the occurrence that contains it. Pure: no clock is read here.
//!
//! Semantics, one rule for every day including daylight-saving changes: a boundary `t` on
//! a local date `D` is **the earliest instant at which the local clock shows `D t` or
//! later**. So
//! - a normal day: the instant the clock shows `t`;
//! - a skipped hour (spring forward), `t` inside the gap: the transition instant, i.e. the
//!   first instant after the jump (`02:30` in Berlin on the last Sunday of March is 03:00
//!   CEST); a window lying wholly inside the gap does not occur that day;
//! - a repeated hour (fall back), `t` inside it: its first occurrence (`02:30` in Berlin on
//!   the last Sunday of October is 02:30 CEST, not CET).
//!
//! An occurrence that starts on day `D` (a day in `days`) is the half-open interval
//! `[B(D, from), B(D', to))`, where `D' = D` when `to > from` and `D + 1` otherwise (the
//! window spans midnight); `to = 24:00` is `00:00` of the next day. Each occurrence is
//! therefore one contiguous stretch of real time: it never re-opens when clocks go back.

use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

use crate::config::TimeWindow;

/// The occurrence of `w` containing `now`, as `[start, end)`, if any.
pub fn occurrence(w: &TimeWindow, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    let today = w.tz.to_datetime(now).date();
    // An occurrence lasts at most a day plus a DST shift, so it started today, yesterday or
    // (in zones whose date jumps back) the day before.
    for back in 0..=2 {
        let start_day = today.checked_sub(back.days()).ok()?;
        if !w.days.contains(start_day.weekday()) {
            continue;
        }
        let end_day = if w.to > w.from {
            start_day
        } else {
            start_day.tomorrow().ok()?
        };
        let start = boundary(&w.tz, start_day, w.from)?;
        let end = boundary(&w.tz, end_day, w.to)?;
        if start <= now && now < end {
            return Some((start, end));
        }
    }
    None
}

/// Whether `now` lies inside some occurrence of `w`.
pub fn contains(w: &TimeWindow, now: Timestamp) -> bool {
    occurrence(w, now).is_some()
}

/// The earliest instant at which the local clock shows `date` + `secs` or later.
fn boundary(tz: &TimeZone, date: Date, secs: u32) -> Option<Timestamp> {
    let (date, secs) = if secs >= 86400 {
        (date.tomorrow().ok()?, 0)
    } else {
        (date, secs)
    };
    let hms = |v: u32, d: u32, m: u32| i8::try_from(v / d % m).ok();
    let time = Time::new(hms(secs, 3600, 24)?, hms(secs, 60, 60)?, 0, 0).ok()?;
    let dt = date.to_datetime(time);
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        // The earlier offset (before the change) gives the earlier, first occurrence.
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        // `dt` read with the new offset lies just before the jump; the next transition after
        // it is the jump itself.
        AmbiguousOffset::Gap { before, after } => {
            let just_before = after.to_timestamp(dt).ok()?;
            match tz.following(just_before).next() {
                Some(t) => Some(t.timestamp()),
                None => before.to_timestamp(dt).ok(),
            }
        }
    }
}
