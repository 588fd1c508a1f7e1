//! Streaming scan: chunks in, transformed chunks and findings out, in constant memory.
//!
//! Takes an [`Engine`] and the chunks of one stream; gives the transformed stream (chunk-in,
//! chunk-out: only the carry-over is held back) and [`Finding`]s by absolute byte offset. The
//! result does not depend on how the stream is cut into chunks: a candidate start is decided
//! only once the look-ahead it needs (`max_len` + context window + 1) has arrived, and every
//! position is searched once per detector. Overlaps are resolved by earliest start, then
//! longest, then nearest context word (so `SSN: x, routing: y` gives each number its own
//! entity), then higher `priority`, then pack order; the loser is dropped. Nothing here fails:
//! a scanner always ends, and never logs what it matched.
//!
//! Object-body scanners ([`Engine::scanner_for`]) first hold back the first
//! [`SNIFF_LEN`](super::format::SNIFF_LEN) bytes: unscannable content follows the profile's `on_unscannable` (blocked:
//! nothing is output; passed: output unchanged, nothing scanned); otherwise the format is
//! settled and, for CSV/TSV and JSON/NDJSON, a tokenizer runs ahead of detection
//! (`structure`): findings must lie inside one cell or JSON string or number, header and key
//! names count as context words, and column/path rules force findings on whole cells and
//! values.
//!
//! Memory per scanner: the carry-over (`Engine::carry_over`), the chunk being processed, the
//! words, cells and candidates inside the carry-over, and the findings not yet drained (turn
//! them off with [`Scanner::keep_findings`]; the counts in [`Summary`] are always kept).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

use super::action::{Action, Shape, apply};
use super::detector::Scratch;
use super::engine::{Engine, Trigger};
use super::format::{Format, OnUnscannable, Sniffed, Unscannable, sniff};

mod search;
mod structure;

use structure::Structure;

/// Unchanged runs at least this long are passed on as slices of the input, without copying.
const ZERO_COPY_MIN: usize = 4096;

/// Whether a scanner produces output or only findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    /// Output the transformed stream.
    Transform,
    /// Findings only (pre-scans, inbound classification); `push` leaves `out` empty.
    Detect,
}

/// One resolved finding. Never holds the matched bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Absolute byte offsets in the input stream, end exclusive.
    pub start: u64,
    pub end: u64,
    pub entity: Arc<str>,
    pub detector: Arc<str>,
    pub action: Action,
}

/// Per-detector totals for one stream (for the audit event: never the values).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// `(entity, detector, action, count)` for each detector with at least one finding.
    pub counts: Vec<(Arc<str>, Arc<str>, Action, u64)>,
    /// A finding whose action is `block` was seen.
    pub blocked: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The format the body was scanned as (`None`: not decided, or unscannable).
    pub format: Option<Format>,
    /// Why the body could not be scanned; with `on_unscannable = block`, `blocked` is set.
    pub unscannable: Option<Unscannable>,
    /// JSON/NDJSON syntax errors: the rest of the document (the line, for NDJSON) was scanned
    /// as text.
    pub syntax_errors: u64,
    /// `tokenize_fpe` findings with fewer than 6 digits, masked instead.
    pub fpe_fallbacks: u64,
}

impl Summary {
    /// Total findings.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.3).sum()
    }
}

/// A candidate finding that passed its detector's checks, not yet resolved against others.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    start: u64,
    end: u64,
    /// Bytes between the value and its nearest context word (0 without context).
    context: u32,
    /// Detector slot, or `slots.len() + rule` for a column or path rule.
    slot: u32,
    shape: Shape,
}

/// A keyword or context word occurrence.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: u64,
    end: u64,
    word: u32,
}

/// The scan state of one stream.
pub struct Scanner {
    engine: Arc<Engine>,
    mode: ScanMode,
    /// Input bytes `[base, base + buf.len())`: the carry-over and the newest chunk.
    buf: Vec<u8>,
    base: u64,
    /// Word occurrences ending at or before this are in `hits`.
    ac_end: u64,
    /// Word occurrences in the carry-over, ordered by end.
    hits: VecDeque<Hit>,
    /// Per slot: inclusive ranges of candidate starts opened by its words, ascending.
    triggers: Vec<VecDeque<(u64, u64)>>,
    /// Per slot: the next candidate start it considers.
    next: Vec<u64>,
    /// The set DFA's events ending before this are in `triggers`.
    set_next: u64,
    /// Scratch for the lanes' match events.
    events: Vec<(usize, u32)>,
    pending: Vec<Candidate>,
    /// Scratch for the candidates being decided, in order.
    decided: Vec<Candidate>,
    /// End of the last chosen finding; candidates starting before it lose.
    covered_until: u64,
    /// Every candidate starting before this is decided (and output emitted up to here).
    frontier: u64,
    /// Input chunks not yet emitted, from `emit`.
    input: VecDeque<Bytes>,
    emit: u64,
    out_buf: BytesMut,
    findings: Vec<Finding>,
    keep_findings: bool,
    counts: Vec<u64>,
    blocked: bool,
    bytes_out: u64,
    finished: bool,
    /// Regex scratch per detector, borrowed from the engine's pool and given back on drop:
    /// the lazy DFAs it holds stay warm from one stream to the next.
    scratch: Vec<Scratch>,
    /// Object bodies: `Some(declared format)` until the first bytes are sniffed.
    sniff: Option<Option<Format>>,
    format: Option<Format>,
    unscannable: Option<Unscannable>,
    /// The CSV/JSON tokenizer and its cells, for structured formats.
    structure: Option<Structure>,
    fpe_fallbacks: u64,
}

impl Drop for Scanner {
    fn drop(&mut self) {
        let scratch = std::mem::take(&mut self.scratch);
        self.engine.return_caches(scratch);
    }
}

impl Scanner {
    /// `sniff`: `Some(declared format)` for object bodies, `None` for plain text.
    pub(crate) fn new(
        engine: Arc<Engine>,
        mode: ScanMode,
        sniff: Option<Option<Format>>,
    ) -> Scanner {
        let n = engine.slots.len();
        let scratch = engine.take_caches();
        let everywhere = |s: &super::engine::Slot| s.trigger == Trigger::Everywhere;
        Scanner {
            scratch,
            mode,
            buf: Vec::new(),
            base: 0,
            ac_end: 0,
            hits: VecDeque::new(),
            triggers: engine
                .slots
                .iter()
                .map(|s| everywhere(s).then_some((0, u64::MAX)).into_iter().collect())
                .collect(),
            next: vec![0; n],
            set_next: 0,
            events: Vec::new(),
            pending: Vec::new(),
            decided: Vec::new(),
            covered_until: 0,
            frontier: 0,
            input: VecDeque::new(),
            emit: 0,
            out_buf: BytesMut::new(),
            findings: Vec::new(),
            keep_findings: true,
            counts: vec![0; engine.targets()],
            blocked: false,
            bytes_out: 0,
            finished: false,
            format: sniff.is_none().then_some(Format::Text),
            sniff,
            unscannable: None,
            structure: None,
            fpe_fallbacks: 0,
            engine,
        }
    }

    /// Whether findings are kept for [`Scanner::drain_findings`] (default) or only counted.
    pub fn keep_findings(&mut self, keep: bool) {
        self.keep_findings = keep;
    }

    /// Scans the next chunk; appends the output that is now final to `out`.
    pub fn push(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        assert!(!self.finished, "push after finish");
        if chunk.is_empty() {
            return;
        }
        self.buf.extend_from_slice(&chunk);
        if self.mode == ScanMode::Transform {
            self.input.push_back(chunk);
        }
        self.process(false, out);
    }

    /// Ends the stream: decides the rest and appends the remaining output to `out`.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) {
        if !self.finished {
            self.finished = true;
            self.process(true, out);
        }
    }

    /// The findings decided so far and not yet drained, in stream order.
    pub fn drain_findings(&mut self) -> std::vec::Drain<'_, Finding> {
        self.findings.drain(..)
    }

    /// Whether a `block` finding has been decided.
    pub fn blocked(&self) -> bool {
        self.blocked
    }

    /// Totals so far.
    pub fn summary(&self) -> Summary {
        let counts = (0..self.counts.len() as u32)
            .filter(|&i| self.counts[i as usize] > 0)
            .map(|i| {
                let t = self.engine.target(i);
                (
                    t.entity.clone(),
                    t.id.clone(),
                    t.action,
                    self.counts[i as usize],
                )
            })
            .collect();
        Summary {
            counts,
            blocked: self.blocked,
            bytes_in: self.base + self.buf.len() as u64,
            bytes_out: self.bytes_out,
            format: self.format.filter(|_| self.unscannable.is_none()),
            unscannable: self.unscannable,
            syntax_errors: self.structure.as_ref().map_or(0, Structure::syntax_errors),
            fpe_fallbacks: self.fpe_fallbacks,
        }
    }

    fn avail(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    fn rel(&self, abs: u64) -> usize {
        (abs - self.base) as usize
    }

    fn process(&mut self, end: bool, out: &mut Vec<Bytes>) {
        let engine = Arc::clone(&self.engine);
        let avail = self.avail();
        if self.sniff.is_some() && !self.settle_format(end) {
            return;
        }
        if self.unscannable.is_some() {
            // Passed: unchanged; blocked: nothing goes out.
            let pass = engine.on_unscannable == OnUnscannable::Pass;
            if self.mode == ScanMode::Transform {
                self.advance_input(avail, pass.then_some(&mut *out));
            }
            self.flush(out);
            self.base = avail;
            self.buf.clear();
            return;
        }
        if let Some(st) = self.structure.as_mut() {
            st.parse(&self.buf, self.base, end);
            self.apply_structure(avail);
        }
        self.scan_words(avail);
        self.scan_set(avail, end);
        let limit = |h: usize| {
            if end {
                avail
            } else {
                avail.saturating_sub(h as u64)
            }
        };
        for (i, slot) in engine.slots.iter().enumerate() {
            self.enumerate_windows(i, limit(slot.det.horizon()));
        }
        let frontier = limit(engine.horizon);
        if frontier > self.frontier || end {
            self.decide(frontier, out);
            self.frontier = frontier;
        }
        self.flush(out);
        self.trim();
    }

    /// Sniffs the first bytes once enough have arrived; false while holding them back.
    fn settle_format(&mut self, end: bool) -> bool {
        let Some(declared) = self.sniff else {
            return true;
        };
        let format = match sniff(&self.buf, end) {
            Sniffed::NeedMore => return false,
            Sniffed::Unscannable(why) => {
                self.unscannable = Some(why);
                self.blocked |= self.engine.on_unscannable == OnUnscannable::Block;
                None
            }
            Sniffed::Scannable(guess) => Some(declared.unwrap_or(guess)),
        };
        self.sniff = None;
        self.format = format;
        if let Some(f) = format.filter(|f| f.is_structured()) {
            self.structure = Some(Structure::new(f, &self.engine));
        }
        true
    }

    /// Resolves the candidates starting before `frontier` and emits output up to it.
    fn decide(&mut self, frontier: u64, out: &mut Vec<Bytes>) {
        // Only the candidates decided now are ordered; later ones wait unsorted.
        let mut decided = std::mem::take(&mut self.decided);
        decided.extend(self.pending.extract_if(.., |c| c.start < frontier));
        let rank = &self.engine.ranks;
        // Stable: each detector's candidates arrive as a sorted run, which a merge sort uses.
        decided.sort_by_key(|c| {
            let len = std::cmp::Reverse(c.end - c.start);
            (c.start, len, c.context, rank[c.slot as usize])
        });
        for c in decided.drain(..) {
            if c.start < self.covered_until {
                continue;
            }
            self.covered_until = c.end;
            self.choose(c, out);
        }
        self.decided = decided;
        self.copy_until(frontier, out);
    }

    fn choose(&mut self, c: Candidate, out: &mut Vec<Bytes>) {
        let engine = Arc::clone(&self.engine);
        let target = engine.target(c.slot);
        self.counts[c.slot as usize] += 1;
        self.blocked |= target.action == Action::Block;
        if self.keep_findings {
            self.findings.push(Finding {
                start: c.start,
                end: c.end,
                entity: target.entity.clone(),
                detector: target.id.clone(),
                action: target.action,
            });
        }
        if self.mode == ScanMode::Transform {
            self.copy_until(c.start, out);
            let value = &self.buf[self.rel(c.start)..self.rel(c.end)];
            let fell_back = apply(
                target.action,
                target.entity,
                value,
                &engine.keys,
                c.shape,
                &mut self.out_buf,
            );
            self.fpe_fallbacks += u64::from(fell_back);
            self.advance_input(c.end, None);
        } else if target.action == Action::TokenizeFpe {
            let value = &self.buf[self.rel(c.start)..self.rel(c.end)];
            let digits = value.iter().filter(|b| b.is_ascii_digit()).count();
            self.fpe_fallbacks += u64::from(digits < super::fpe::MIN_DIGITS);
        }
    }

    /// Emits the input up to `to` unchanged.
    fn copy_until(&mut self, to: u64, out: &mut Vec<Bytes>) {
        if self.mode == ScanMode::Transform {
            self.advance_input(to, Some(out));
        }
    }

    /// Moves `emit` to `to`, copying the bytes to the output when `out` is given.
    fn advance_input(&mut self, to: u64, mut out: Option<&mut Vec<Bytes>>) {
        while self.emit < to {
            let Some(front) = self.input.front_mut() else {
                break;
            };
            let n = front.len().min((to - self.emit) as usize);
            match out.as_deref_mut() {
                Some(out) if n >= ZERO_COPY_MIN => {
                    if !self.out_buf.is_empty() {
                        let done = self.out_buf.split().freeze();
                        self.bytes_out += done.len() as u64;
                        out.push(done);
                    }
                    self.bytes_out += n as u64;
                    out.push(front.split_to(n));
                }
                Some(_) => {
                    self.out_buf.extend_from_slice(&front[..n]);
                    front.advance(n);
                }
                None => front.advance(n),
            }
            self.emit += n as u64;
            if front.is_empty() {
                self.input.pop_front();
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<Bytes>) {
        if !self.out_buf.is_empty() {
            let done = self.out_buf.split().freeze();
            self.bytes_out += done.len() as u64;
            out.push(done);
        }
    }

    /// Drops bytes and words no future candidate can look at.
    fn trim(&mut self) {
        let lookback = self.engine.lookback as u64;
        let keep = self
            .frontier
            .saturating_sub(lookback)
            .min(self.ac_end.saturating_sub(self.engine.max_word as u64))
            .max(self.base);
        let dead = (keep - self.base) as usize;
        if dead > 0 && dead >= self.buf.len() / 2 {
            self.buf.drain(..dead);
            self.base = keep;
        }
        while self
            .hits
            .front()
            .is_some_and(|h| h.end + lookback < self.frontier)
        {
            self.hits.pop_front();
        }
        if let Some(st) = self.structure.as_mut() {
            st.trim(self.frontier);
        }
    }
}

/// Findings of a whole buffer (one push, then finish).
pub fn findings_in(engine: &Arc<Engine>, data: &[u8]) -> Vec<Finding> {
    let mut s = engine.scanner(ScanMode::Detect);
    let mut out = Vec::new();
    s.push(Bytes::copy_from_slice(data), &mut out);
    s.finish(&mut out);
    s.drain_findings().collect()
}

/// Transformed bytes and findings of a whole buffer.
pub fn transform(engine: &Arc<Engine>, data: &[u8]) -> (Vec<u8>, Vec<Finding>, Summary) {
    let mut s = engine.scanner(ScanMode::Transform);
    let mut out = Vec::new();
    s.push(Bytes::copy_from_slice(data), &mut out);
    s.finish(&mut out);
    let bytes = out.iter().flat_map(|b| b.iter().copied()).collect();
    let findings = s.drain_findings().collect();
    (bytes, findings, s.summary())
}

#[cfg(test)]
mod tests;
