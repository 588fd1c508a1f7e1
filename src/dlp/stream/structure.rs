//! Structure inside a [`Scanner`]: the CSV or JSON tokenizer that runs ahead of detection.
//!
//! Takes the stream's bytes as they arrive; keeps the cells (CSV) or strings and numbers (JSON)
//! that lie inside the carry-over as regions, each with the context its header or key name
//! gives and the rule that covers it. The scanner uses them three ways: a detector finding must
//! lie inside one region (a number must be matched whole; a finding that starts or ends inside a
//! JSON escape is moved off it), so no finding spans a delimiter or a quote; a region whose name holds one of a
//! detector's context words satisfies that detector's context and opens its windows; a region a
//! rule covers becomes a forced finding (in pieces of the engine's horizon when longer), which
//! beats any detector finding inside it. Everything is decided from bytes already parsed, so
//! chunking does not change the result. Memory: the regions inside the carry-over and the
//! chunk, bounded like the carry-over itself.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::super::action::Shape;
use super::super::engine::{Engine, RuleTarget};
use super::super::format::Format;
use super::super::format::csv::{CsvEvent, CsvTokenizer};
use super::super::format::json::{JsonEvent, JsonTokenizer, Resolver, Token};
use super::super::format::path::Step;
use super::super::lanes::LaneDfa;
use super::search::open;
use super::{Candidate, Scanner};

/// Key and header names remembered with their context, per stream.
const NAME_CACHE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cell,
    Key,
    Str,
    Num,
    Raw,
}

#[derive(Debug)]
struct Region {
    start: u64,
    /// `u64::MAX` while open.
    end: u64,
    kind: Kind,
    /// Detector slots whose context words the region's name holds, ascending.
    context: Option<Arc<[u32]>>,
    /// Index of the rule covering it in `Engine::rules`.
    rule: Option<u32>,
}

enum Tokenizer {
    Csv(CsvTokenizer, Vec<CsvEvent>),
    Json(JsonTokenizer, Vec<JsonEvent>),
}

#[derive(Debug, Clone, Default)]
struct Column {
    context: Option<Arc<[u32]>>,
    rule: Option<u32>,
}

/// The engine's view of names and paths, with a per-stream cache.
struct Names {
    engine: Arc<Engine>,
    cache: HashMap<Vec<u8>, Option<Arc<[u32]>>>,
    has_paths: bool,
}

impl Resolver for Names {
    fn key_context(&mut self, key: &[u8]) -> Option<Arc<[u32]>> {
        if let Some(c) = self.cache.get(key) {
            return c.clone();
        }
        let c = name_context(&self.engine, key);
        if self.cache.len() >= NAME_CACHE {
            self.cache.clear();
        }
        self.cache.insert(key.to_vec(), c.clone());
        c
    }

    fn has_rules(&self) -> bool {
        self.has_paths
    }

    fn rule(&self, position: &[Step<'_>]) -> Option<u32> {
        self.engine
            .rules
            .iter()
            .position(|r| matches!(&r.target, RuleTarget::Path(p) if p.covers(position)))
            .map(|i| i as u32)
    }
}

/// The detector slots for which `name` holds a context word standing alone.
fn name_context(engine: &Engine, name: &[u8]) -> Option<Arc<[u32]>> {
    let ac = engine.ac.as_ref()?;
    let name = name.trim_ascii();
    let letter = |i: usize| name.get(i).is_some_and(u8::is_ascii_alphabetic);
    let mut slots: Vec<u32> = Vec::new();
    let mut s = ac.start(None);
    for (i, &b) in name.iter().enumerate() {
        s = ac.next(s, b);
        if ac.is_special(s) {
            ac.matches(s, &mut |w| {
                let word = &engine.words[w as usize];
                let start = i + 1 - word.len;
                if !(letter(i + 1) || start > 0 && letter(start - 1)) {
                    slots.extend(&word.context_of);
                }
            });
        }
    }
    slots.sort_unstable();
    slots.dedup();
    (!slots.is_empty()).then(|| slots.into())
}

/// The tokenizer, and the regions inside the carry-over.
pub(super) struct Structure {
    tokenizer: Tokenizer,
    names: Names,
    parsed: u64,
    regions: VecDeque<Region>,
    escapes: VecDeque<(u64, u64)>,
    /// Regions from this index on are new or still open: their windows and forced findings
    /// are not all made yet.
    fresh: usize,
    /// How far the forced findings of region `fresh` are made.
    forced_until: u64,
    header: bool,
    columns: Vec<Column>,
}

impl Structure {
    pub(super) fn new(format: Format, engine: &Arc<Engine>) -> Structure {
        let tokenizer = match format {
            Format::Csv | Format::Tsv => {
                let delimiter = if format == Format::Tsv { b'\t' } else { b',' };
                Tokenizer::Csv(
                    CsvTokenizer::new(delimiter, engine.csv.has_header),
                    Vec::new(),
                )
            }
            Format::Json | Format::Ndjson | Format::Text => {
                Tokenizer::Json(JsonTokenizer::new(format == Format::Ndjson), Vec::new())
            }
        };
        let has_paths = engine
            .rules
            .iter()
            .any(|r| matches!(r.target, RuleTarget::Path(_)));
        Structure {
            tokenizer,
            names: Names {
                engine: Arc::clone(engine),
                cache: HashMap::new(),
                has_paths,
            },
            parsed: 0,
            regions: VecDeque::new(),
            escapes: VecDeque::new(),
            fresh: 0,
            forced_until: 0,
            header: engine.csv.has_header,
            columns: Vec::new(),
        }
    }

    pub(super) fn syntax_errors(&self) -> u64 {
        match &self.tokenizer {
            Tokenizer::Json(t, _) => t.errors(),
            Tokenizer::Csv(..) => 0,
        }
    }

    /// Parses `buf[parsed..]` (`buf` starts at stream offset `base`); at the end, closes.
    pub(super) fn parse(&mut self, buf: &[u8], base: u64, end: bool) {
        let new = &buf[(self.parsed - base) as usize..];
        self.parsed += new.len() as u64;
        match &mut self.tokenizer {
            Tokenizer::Csv(t, ev) => {
                t.feed(new, ev);
                if end {
                    t.finish(ev);
                }
                let mut ev = std::mem::take(ev);
                for e in ev.drain(..) {
                    self.csv_event(e);
                }
                if let Tokenizer::Csv(_, slot) = &mut self.tokenizer {
                    *slot = ev;
                }
            }
            Tokenizer::Json(t, ev) => {
                t.feed(new, &mut self.names, ev);
                if end {
                    t.finish(ev);
                }
                for e in ev.drain(..) {
                    match e {
                        JsonEvent::Open {
                            start,
                            token,
                            rule,
                            context,
                        } => {
                            let kind = match token {
                                Token::Key => Kind::Key,
                                Token::String => Kind::Str,
                                Token::Number => Kind::Num,
                                Token::Raw => Kind::Raw,
                            };
                            self.regions.push_back(Region {
                                start,
                                end: u64::MAX,
                                kind,
                                context,
                                rule,
                            });
                        }
                        JsonEvent::Close { end } => close(&mut self.regions, end),
                        JsonEvent::Escape { start, end } => self.escapes.push_back((start, end)),
                    }
                }
            }
        }
    }

    fn csv_event(&mut self, e: CsvEvent) {
        match e {
            CsvEvent::Open {
                start,
                column,
                record,
                ..
            } => {
                let info = if self.header && record == 0 {
                    Column::default()
                } else {
                    self.column(column as usize)
                };
                self.regions.push_back(Region {
                    start,
                    end: u64::MAX,
                    kind: Kind::Cell,
                    context: info.context,
                    rule: info.rule,
                });
            }
            CsvEvent::Close { end } => close(&mut self.regions, end),
            CsvEvent::Header { column, name } => {
                let name = name.trim_ascii().to_ascii_lowercase();
                let engine = &self.names.engine;
                let rule = engine.rules.iter().position(|r| match &r.target {
                    RuleTarget::Column(n) => *n == name,
                    RuleTarget::ColumnIndex(i) => *i == column as usize,
                    RuleTarget::Path(_) => false,
                });
                let info = Column {
                    context: self.names.key_context(&name),
                    rule: rule.map(|i| i as u32),
                };
                let column = column as usize;
                if self.columns.len() <= column {
                    self.columns.resize(column + 1, Column::default());
                }
                self.columns[column] = info;
            }
        }
    }

    /// A data cell's column: by header name, else by position.
    fn column(&self, column: usize) -> Column {
        match self.columns.get(column) {
            Some(c) => c.clone(),
            None => Column {
                context: None,
                rule: self
                    .names
                    .engine
                    .rules
                    .iter()
                    .position(|r| matches!(r.target, RuleTarget::ColumnIndex(i) if i == column))
                    .map(|i| i as u32),
            },
        }
    }

    /// Fits a finding `[fs, fe)` of `slot` to the structure: `None` if it does not fit (it
    /// crosses a cell or token boundary, or is part of a number); else the finding (inside a
    /// JSON string, moved off the escape sequences it starts or ends inside: in `\nann@x.io`
    /// the value is `ann@x.io`), whether its region's name gives `slot` context, and its shape.
    pub(super) fn fit(&self, slot: u32, fs: u64, fe: u64) -> Option<(u64, u64, bool, Shape)> {
        let i = self
            .regions
            .partition_point(|r| r.start <= fs)
            .checked_sub(1)?;
        let r = &self.regions[i];
        if r.kind == Kind::Raw {
            return Some((fs, fe, false, Shape::Plain));
        }
        if fs >= r.end || fe > r.end {
            return None;
        }
        let (mut fs, mut fe) = (fs, fe);
        let shape = match r.kind {
            Kind::Num if fs != r.start || fe != r.end => return None,
            Kind::Num => Shape::JsonNumber,
            Kind::Key | Kind::Str => {
                let first = self.escapes.partition_point(|e| e.1 <= fs);
                let end = fe;
                for &(s, e) in self.escapes.range(first..).take_while(|e| e.0 < end) {
                    if s < fs && fs < e {
                        fs = e;
                    }
                    if s < fe && fe < e {
                        fe = s;
                    }
                }
                if fe <= fs {
                    return None;
                }
                Shape::JsonString
            }
            Kind::Cell | Kind::Raw => Shape::Plain,
        };
        let context = r
            .context
            .as_ref()
            .is_some_and(|c| c.binary_search(&slot).is_ok());
        Some((fs, fe, context, shape))
    }

    /// Drops regions and escapes that end at or before `frontier`.
    pub(super) fn trim(&mut self, frontier: u64) {
        while self
            .regions
            .front()
            .is_some_and(|r| r.end <= frontier && self.fresh > 0)
        {
            self.regions.pop_front();
            self.fresh -= 1;
        }
        while self.escapes.front().is_some_and(|e| e.1 <= frontier) {
            self.escapes.pop_front();
        }
    }
}

fn close(regions: &mut VecDeque<Region>, end: u64) {
    if let Some(r) = regions.back_mut() {
        r.end = end;
    }
}

impl Scanner {
    /// Opens the windows of context-triggered detectors over regions whose name gives them
    /// context, and records the forced findings of rule-covered regions, for the bytes parsed.
    pub(super) fn apply_structure(&mut self, avail: u64) {
        let engine = Arc::clone(&self.engine);
        let Some(st) = self.structure.as_mut() else {
            return;
        };
        let piece = engine.horizon.max(1) as u64;
        let n = st.regions.len();
        for i in st.fresh..n {
            let r = &st.regions[i];
            let closed = r.end != u64::MAX;
            let upto = if closed { r.end } else { avail };
            if let Some(ctx) = &r.context
                && upto > r.start
            {
                for &slot in ctx.iter() {
                    let det = &engine.slots[slot as usize].det;
                    if det.keywords.is_empty() {
                        let lo = r.start.saturating_sub(det.max_len as u64);
                        open(&mut self.triggers[slot as usize], lo, upto - 1);
                    }
                }
            }
            if let Some(rule) = r.rule {
                let shape = match r.kind {
                    Kind::Str => Shape::JsonString,
                    Kind::Num => Shape::JsonNumber,
                    _ => Shape::Plain,
                };
                let mut p = st.forced_until.max(r.start);
                while p < upto && (upto - p >= piece || closed) {
                    let q = (p + piece).min(upto);
                    self.pending.push(Candidate {
                        start: p,
                        end: q,
                        context: 0,
                        slot: (engine.slots.len() as u32) + rule,
                        shape,
                    });
                    p = q;
                }
                st.forced_until = p;
            }
            if !closed {
                st.fresh = i;
                return;
            }
        }
        st.fresh = n;
    }
}

#[cfg(test)]
mod tests;
