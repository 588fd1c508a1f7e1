//! Candidate search inside a [`Scanner`]: the word and set DFAs that open windows, the regex
//! search inside the windows, and the checks that turn a regex match into a candidate.
//!
//! A detector's candidates are defined locally, which is what makes the scan independent of
//! chunking: at a start `s` the candidate is the regex's leftmost-first match anchored at `s`
//! within `[s, s + max_len]` (look-around sees the bytes around it). It counts when its value
//! (the `value` group, or the whole match) passes the validator, is not allow-listed, has a
//! keyword within `context_window` of the match (when the detector has keywords) and a context
//! word within `context_window` of the value (when it has context). After a candidate counts,
//! the detector skips to the end of its match; after a rejection, to `s + 1`. In CSV and JSON
//! the finding must also fit one cell or value (`structure`), whose header or key name counts
//! as a context word.

use std::collections::VecDeque;
use std::sync::Arc;

use super::super::action::Shape;
use super::super::lanes;
use super::{Candidate, Hit, Scanner};

/// Adds the candidate starts `[lo, hi]` to a slot's ranges (which arrive nearly in order).
pub(super) fn open(q: &mut VecDeque<(u64, u64)>, lo: u64, hi: u64) {
    match q.back_mut() {
        Some(back) if lo <= back.1.saturating_add(1) => {
            back.0 = back.0.min(lo);
            back.1 = back.1.max(hi);
        }
        _ => q.push_back((lo, hi)),
    }
}

impl Scanner {
    /// Finds the word occurrences that end after `ac_end`; opens their detectors' windows.
    pub(super) fn scan_words(&mut self, avail: u64) {
        let engine = Arc::clone(&self.engine);
        let Some(ac) = &engine.ac else {
            self.ac_end = avail;
            return;
        };
        if avail <= self.ac_end {
            return;
        }
        self.events.clear();
        let (from, to) = (self.rel(self.ac_end), self.rel(avail));
        let warm = engine.max_word - 1;
        lanes::scan(
            ac,
            &self.buf,
            from,
            to,
            warm,
            false,
            self.base == 0,
            &mut self.events,
        );
        for &(i, word) in &self.events {
            let end = self.base + i as u64 + 1;
            let w = &engine.words[word as usize];
            let start = end - w.len as u64;
            let hit = Hit { start, end, word };
            // A context word with a letter beside it never counts (`tel` in `hotel`), so it
            // opens no windows; one whose next byte has not arrived yet does.
            let joined = self.letter(start.wrapping_sub(1)) || self.letter(end);
            self.hits.push_back(hit);
            for &slot in &w.triggers {
                let det = &engine.slots[slot as usize].det;
                if joined && det.keywords.is_empty() {
                    continue;
                }
                let lo = end.saturating_sub((det.max_len + det.context_window) as u64);
                open(
                    &mut self.triggers[slot as usize],
                    lo,
                    start + det.context_window as u64,
                );
            }
        }
        self.ac_end = avail;
    }

    /// Runs the keyword-free set DFA over the new bytes; opens windows before its match ends.
    pub(super) fn scan_set(&mut self, avail: u64, end: bool) {
        let engine = Arc::clone(&self.engine);
        let Some(set) = &engine.set else {
            return;
        };
        if avail <= self.set_next && !end {
            return;
        }
        self.events.clear();
        let (from, to) = (self.rel(self.set_next), self.rel(avail));
        let dfa = &*set.dfa;
        lanes::scan(
            dfa,
            &self.buf,
            from,
            to,
            set.warm,
            end,
            self.base == 0,
            &mut self.events,
        );
        for &(i, pattern) in &self.events {
            let match_end = self.base + i as u64;
            let slot = set.slots[pattern as usize];
            let det = &engine.slots[slot as usize].det;
            let lo = match_end.saturating_sub(det.max_len as u64);
            open(
                &mut self.triggers[slot as usize],
                lo,
                match_end.saturating_sub(1),
            );
        }
        self.set_next = avail;
    }

    /// Searches slot `i`'s open windows for candidate starts below `limit`.
    pub(super) fn enumerate_windows(&mut self, i: usize, limit: u64) {
        while let Some(&(lo, hi)) = self.triggers[i].front() {
            if limit == 0 {
                return;
            }
            let start = lo.max(self.next[i]);
            let last = hi.min(limit - 1);
            if start <= last {
                self.search_slot(i, start, last);
            }
            if hi < limit {
                self.triggers[i].pop_front();
            } else {
                return;
            }
        }
    }

    /// Every candidate of slot `i` starting in `[start, last]`.
    fn search_slot(&mut self, i: usize, start: u64, last: u64) {
        let engine = Arc::clone(&self.engine);
        let det = &engine.slots[i].det;
        let avail = self.avail();
        let mut pos = start;
        while pos <= last {
            let span_end = (last + det.max_len as u64).min(avail);
            let span = self.rel(pos)..self.rel(span_end);
            let Some(m) = det.find(&mut self.scratch[i], &self.buf, span, false) else {
                pos = last + 1;
                break;
            };
            let s = self.base + m.start() as u64;
            if s > last {
                pos = last + 1;
                break;
            }
            let found = (self.base + m.end() as u64, span_end);
            pos = self.candidate(i, s, Some(found)).unwrap_or(s + 1);
        }
        self.next[i] = self.next[i].max(pos);
    }

    /// Checks the candidate of slot `i` at `s`; `found` is an unanchored match starting at `s`
    /// and the end of the span it was searched in. Records a candidate that passes and gives
    /// the end of its match.
    fn candidate(&mut self, i: usize, s: u64, found: Option<(u64, u64)>) -> Option<u64> {
        let engine = Arc::clone(&self.engine);
        let det = &engine.slots[i].det;
        let canon_end = (s + det.max_len as u64).min(self.avail());
        let me = match found {
            Some((end, span_end)) if end - s <= det.max_len as u64 && span_end >= canon_end => end,
            _ => {
                let span = self.rel(s)..self.rel(canon_end);
                let m = det.find(&mut self.scratch[i], &self.buf, span, true)?;
                self.base + m.end() as u64
            }
        };
        let span = self.rel(s)..self.rel(me);
        let (fs, fe) = match det.value_bounds(&mut self.scratch[i], &self.buf, span) {
            Some((vs, ve)) => (self.base + vs as u64, self.base + ve as u64),
            None => (s, me),
        };
        if fe <= fs {
            return None;
        }
        let slot = i as u32;
        let (fs, fe, named, shape) = match &self.structure {
            Some(st) => st.fit(slot, fs, fe)?,
            None => (fs, fe, false, Shape::Plain),
        };
        let cw = det.context_window as u64;
        if !det.keywords.is_empty()
            && self
                .word_near(s, me, cw, |h| {
                    engine.words[h.word as usize].keyword_of.contains(&slot)
                })
                .is_none()
        {
            return None;
        }
        let mut context = 0;
        if !det.context.is_empty() && !named {
            let near = self.word_near(fs, fe, cw, |h| {
                engine.words[h.word as usize].context_of.contains(&slot) && self.standalone(h)
            });
            context = near? as u32;
        }
        let value = &self.buf[self.rel(fs)..self.rel(fe)];
        if det.validator.is_some_and(|v| !v.check(value)) || det.allowed(value) {
            return None;
        }
        self.pending.push(Candidate {
            start: fs,
            end: fe,
            context,
            slot,
            shape,
        });
        Some(me)
    }

    /// The distance from `[start, end)` to the nearest word occurrence inside
    /// `[start - window, end + window]` that satisfies `pred` (0 when it overlaps the span).
    fn word_near(
        &self,
        start: u64,
        end: u64,
        window: u64,
        pred: impl Fn(&Hit) -> bool,
    ) -> Option<u64> {
        let (from, to) = (start.saturating_sub(window), end + window);
        let first = self.hits.partition_point(|h| h.end < from);
        self.hits
            .range(first..)
            .take_while(|h| h.end <= to)
            .filter(|h| h.start >= from && pred(h))
            .map(|h| h.start.saturating_sub(end).max(start.saturating_sub(h.end)))
            .min()
    }

    /// Whether a context word stands alone: no ASCII letter right before or after it.
    fn standalone(&self, h: &Hit) -> bool {
        !(self.letter(h.end) || h.start > 0 && self.letter(h.start - 1))
    }

    /// Whether the byte at `abs` is held and is an ASCII letter.
    fn letter(&self, abs: u64) -> bool {
        abs >= self.base && abs < self.avail() && self.buf[self.rel(abs)].is_ascii_alphabetic()
    }
}
