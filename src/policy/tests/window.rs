//! Time windows: edges, days, midnight, and both DST transitions in Europe/Berlin and
//! America/New_York (2026: Berlin 29 March and 25 October at 01:00 UTC; New York 8 March at
//! 07:00 UTC and 1 November at 06:00 UTC).

use jiff::Timestamp;

use crate::config::{DaySet, TimeWindow};
use crate::policy::window::{contains, occurrence};

fn window(days: &str, from: &str, to: &str, tz: &str) -> TimeWindow {
    let hm = |s: &str| {
        let (h, m) = s.split_once(':').unwrap();
        h.parse::<u32>().unwrap() * 3600 + m.parse::<u32>().unwrap() * 60
    };
    let mut set = DaySet::empty();
    for d in days.split(',') {
        set.insert(DaySet::day(d).unwrap());
    }
    TimeWindow {
        days: set,
        from: hm(from),
        to: hm(to),
        tz: jiff::tz::TimeZone::get(tz).unwrap(),
    }
}

const ALL: &str = "mon,tue,wed,thu,fri,sat,sun";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Asserts for each instant whether it is inside `w`.
#[track_caller]
fn check(w: &TimeWindow, cases: &[(&str, bool)]) {
    for (at, inside) in cases {
        assert_eq!(contains(w, ts(at)), *inside, "{w} at {at}");
    }
}

#[test]
fn office_hours_edges_are_half_open_in_local_time() {
    let w = window("mon,tue,wed,thu,fri", "08:00", "18:00", "Europe/Berlin");
    check(
        &w,
        &[
            // Monday 2 March 2026, CET (+01:00).
            ("2026-03-02T06:59:59Z", false),
            ("2026-03-02T07:00:00Z", true),
            ("2026-03-02T16:59:59Z", true),
            ("2026-03-02T17:00:00Z", false),
            // Saturday and Sunday.
            ("2026-03-07T10:00:00Z", false),
            ("2026-03-08T10:00:00Z", false),
            // Monday 30 March, after the change: CEST (+02:00), still 08:00 local.
            ("2026-03-30T05:59:59Z", false),
            ("2026-03-30T06:00:00Z", true),
            ("2026-03-30T15:59:59Z", true),
            ("2026-03-30T16:00:00Z", false),
        ],
    );
}

#[test]
fn berlin_spring_forward_boundary_in_the_gap_is_the_jump() {
    // 29 March 2026: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
    let w = window(ALL, "02:30", "05:00", "Europe/Berlin");
    check(
        &w,
        &[
            ("2026-03-29T00:59:59Z", false),
            ("2026-03-29T01:00:00Z", true),
            ("2026-03-29T02:59:59Z", true),
            ("2026-03-29T03:00:00Z", false),
        ],
    );
    let (start, end) = occurrence(&w, ts("2026-03-29T01:30:00Z")).unwrap();
    assert_eq!(
        (start, end),
        (ts("2026-03-29T01:00:00Z"), ts("2026-03-29T03:00:00Z"))
    );
    // A window wholly inside the skipped hour does not occur that day, but does the next.
    let gap = window(ALL, "02:00", "02:30", "Europe/Berlin");
    check(
        &gap,
        &[
            ("2026-03-29T00:59:59Z", false),
            ("2026-03-29T01:00:00Z", false),
            ("2026-03-29T01:15:00Z", false),
            ("2026-03-30T00:15:00Z", true),
        ],
    );
}

#[test]
fn berlin_fall_back_window_never_reopens_in_the_repeated_hour() {
    // 25 October 2026: 03:00 CEST goes back to 02:00 CET at 01:00 UTC.
    let ends_in_fold = window(ALL, "00:00", "02:30", "Europe/Berlin");
    check(
        &ends_in_fold,
        &[
            ("2026-10-24T22:00:00Z", true),
            ("2026-10-25T00:29:59Z", true),
            // The first 02:30 (CEST) ends it ...
            ("2026-10-25T00:30:00Z", false),
            // ... and 02:15 CET, the second pass, stays outside.
            ("2026-10-25T01:15:00Z", false),
        ],
    );
    let starts_in_fold = window(ALL, "02:30", "04:00", "Europe/Berlin");
    check(
        &starts_in_fold,
        &[
            ("2026-10-25T00:29:59Z", false),
            ("2026-10-25T00:30:00Z", true),
            ("2026-10-25T01:15:00Z", true),
            ("2026-10-25T02:59:59Z", true),
            ("2026-10-25T03:00:00Z", false),
        ],
    );
    // The whole local day of the change lasts 25 hours of real time.
    let day = window(ALL, "00:00", "24:00", "Europe/Berlin");
    let (start, end) = occurrence(&day, ts("2026-10-25T12:00:00Z")).unwrap();
    assert_eq!(end.duration_since(start).as_hours(), 25);
}

#[test]
fn new_york_both_transitions() {
    // 8 March 2026: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    let spring = window(ALL, "02:30", "04:00", "America/New_York");
    check(
        &spring,
        &[
            ("2026-03-08T06:59:59Z", false),
            ("2026-03-08T07:00:00Z", true),
            ("2026-03-08T07:59:59Z", true),
            ("2026-03-08T08:00:00Z", false),
        ],
    );
    // 1 November 2026: 02:00 EDT goes back to 01:00 EST at 06:00 UTC.
    let fall = window(ALL, "00:00", "01:30", "America/New_York");
    check(
        &fall,
        &[
            ("2026-11-01T04:00:00Z", true),
            ("2026-11-01T05:29:59Z", true),
            ("2026-11-01T05:30:00Z", false),
            ("2026-11-01T06:15:00Z", false),
        ],
    );
    let office = window("mon,tue,wed,thu,fri", "09:00", "17:00", "America/New_York");
    check(
        &office,
        &[
            // Friday 30 October (EDT, -04:00) and Monday 2 November (EST, -05:00).
            ("2026-10-30T13:00:00Z", true),
            ("2026-10-30T12:59:59Z", false),
            ("2026-11-02T13:30:00Z", false),
            ("2026-11-02T14:00:00Z", true),
            ("2026-11-02T21:59:59Z", true),
            ("2026-11-02T22:00:00Z", false),
        ],
    );
}

#[test]
fn windows_past_midnight_belong_to_the_day_they_start() {
    let w = window("fri", "22:00", "02:00", "Europe/Berlin");
    check(
        &w,
        &[
            // Friday 6 March 2026 22:30 CET and Saturday 01:59 CET.
            ("2026-03-06T21:30:00Z", true),
            ("2026-03-07T00:59:59Z", true),
            ("2026-03-07T01:00:00Z", false),
            ("2026-03-06T20:59:59Z", false),
            // Saturday evening and Thursday night are not Friday's window.
            ("2026-03-07T21:30:00Z", false),
            ("2026-03-05T22:30:00Z", false),
        ],
    );
    // Across the spring change: Saturday 28 March 22:00 CET to Sunday 04:00 CEST is 5 hours.
    let sat = window("sat", "22:00", "04:00", "Europe/Berlin");
    let (start, end) = occurrence(&sat, ts("2026-03-29T01:59:59Z")).unwrap();
    assert_eq!(
        (start, end),
        (ts("2026-03-28T21:00:00Z"), ts("2026-03-29T02:00:00Z"))
    );
    assert!(!contains(&sat, ts("2026-03-29T02:00:00Z")));
}

#[test]
fn to_24_00_is_the_end_of_the_day() {
    let w = window("mon", "00:00", "24:00", "UTC");
    check(
        &w,
        &[
            ("2026-03-01T23:59:59Z", false),
            ("2026-03-02T00:00:00Z", true),
            ("2026-03-02T23:59:59Z", true),
            ("2026-03-03T00:00:00Z", false),
        ],
    );
}
