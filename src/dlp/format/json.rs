//! Streaming JSON tokenizer that reports where each string and number lies in the stream, and
//! which field it belongs to.
//!
//! Takes the bytes of a JSON or NDJSON stream in pieces of any size and a [`Resolver`] (the
//! engine's view of key names and path rules); gives [`JsonEvent`]s with absolute byte offsets:
//! a key, string (content inside the quotes) or number token opens and closes, escape sequences
//! inside strings, and stretches of raw text after a syntax error. Each value carries the first
//! path rule that covers it and the context of its nearest key. Several top-level values may
//! follow each other. A syntax error (or nesting deeper than [`MAX_DEPTH`]) makes the rest of
//! the stream raw text in JSON mode, the rest of the line in NDJSON mode. Constant memory:
//! the nesting stack, and keys up to 256 bytes each. Never fails.

use std::sync::Arc;

use super::path::{MAX_KEY, Step};

/// Deepest nesting followed; deeper input is a syntax error.
pub const MAX_DEPTH: usize = 128;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// An object key's content (inside the quotes).
    Key,
    /// A string value's content (inside the quotes).
    String,
    /// A number value.
    Number,
    /// Unparsed bytes after a syntax error.
    Raw,
}

/// A change in the token structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonEvent {
    Open {
        start: u64,
        token: Token,
        /// The first path rule covering this value (values only).
        rule: Option<u32>,
        /// The context of the nearest enclosing key (values only).
        context: Option<Arc<[u32]>>,
    },
    /// The open token ends at `end` (exclusive).
    Close { end: u64 },
    /// An escape sequence `\x` or `\uXXXX` inside a string, `[start, end)`.
    Escape { start: u64, end: u64 },
}

/// What the tokenizer asks about keys and positions.
pub trait Resolver {
    /// The context a key name gives the values under it (`None`: none).
    fn key_context(&mut self, key: &[u8]) -> Option<Arc<[u32]>>;
    /// Whether any path rule exists (positions are built only then).
    fn has_rules(&self) -> bool;
    /// The first rule covering a value at `position`.
    fn rule(&self, position: &[Step<'_>]) -> Option<u32>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Value { close_ok: bool },
    AfterValue,
    Key { close_ok: bool },
    Colon,
    Str { key: bool },
    Esc { key: bool },
    Unicode { key: bool, left: u8 },
    Num,
    Lit(&'static [u8]),
    Error,
}

#[derive(Debug)]
struct Frame {
    object: bool,
    key: Vec<u8>,
    key_long: bool,
    context: Option<Arc<[u32]>>,
    index: u64,
}

/// The tokenizer state of one stream.
#[derive(Debug)]
pub struct JsonTokenizer {
    ndjson: bool,
    st: St,
    frames: Vec<Frame>,
    /// Frames popped, kept for their key buffers.
    spare: Vec<Frame>,
    pos: u64,
    errors: u64,
}

impl JsonTokenizer {
    /// `ndjson`: a syntax error spoils only the rest of its line.
    pub fn new(ndjson: bool) -> JsonTokenizer {
        JsonTokenizer {
            ndjson,
            st: St::Value { close_ok: false },
            frames: Vec::new(),
            spare: Vec::new(),
            pos: 0,
            errors: 0,
        }
    }

    /// Syntax errors so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Parses the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8], names: &mut dyn Resolver, out: &mut Vec<JsonEvent>) {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            let p = self.pos + i as u64;
            let errors = self.errors;
            match self.st {
                St::Str { key } => {
                    let run = data[i..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                        .unwrap_or(data.len() - i);
                    if key {
                        self.key_bytes(&data[i..i + run]);
                    }
                    i += run;
                    let Some(&c) = data.get(i) else { break };
                    let p = self.pos + i as u64;
                    match c {
                        b'"' => {
                            out.push(JsonEvent::Close { end: p });
                            if key {
                                self.key_done(names);
                                self.st = St::Colon;
                            } else {
                                self.st = St::AfterValue;
                            }
                        }
                        b'\\' => {
                            if key {
                                self.key_bytes(b"\\");
                            }
                            self.st = St::Esc { key };
                        }
                        _ => self.error(p, true, out),
                    }
                }
                St::Esc { key } => {
                    if key {
                        self.key_bytes(&[b]);
                    }
                    let len = if b == b'u' { 6 } else { 2 };
                    out.push(JsonEvent::Escape {
                        start: p - 1,
                        end: p - 1 + len,
                    });
                    self.st = if b == b'u' {
                        St::Unicode { key, left: 4 }
                    } else {
                        St::Str { key }
                    };
                }
                St::Unicode { key, left } => {
                    if b < 0x20 || b == b'"' {
                        self.error(p, true, out);
                        continue;
                    }
                    if key {
                        self.key_bytes(&[b]);
                    }
                    self.st = match left {
                        1 => St::Str { key },
                        _ => St::Unicode {
                            key,
                            left: left - 1,
                        },
                    };
                }
                St::Num => {
                    if !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                        out.push(JsonEvent::Close { end: p });
                        self.st = St::AfterValue;
                        continue; // the byte is looked at again after the value
                    }
                }
                St::Error => {
                    if self.ndjson && b == b'\n' {
                        out.push(JsonEvent::Close { end: p });
                        self.reset();
                    }
                }
                _ if matches!(b, b' ' | b'\t' | b'\r' | b'\n') => {}
                St::Value { close_ok } => self.value(b, p, close_ok, names, out),
                St::Key { close_ok } => match b {
                    b'"' => {
                        let f = self.frames.last_mut().expect("keys are inside objects");
                        f.key.clear();
                        f.key_long = false;
                        f.context = None;
                        out.push(JsonEvent::Open {
                            start: p + 1,
                            token: Token::Key,
                            rule: None,
                            context: None,
                        });
                        self.st = St::Str { key: true };
                    }
                    b'}' if close_ok => self.pop(),
                    _ => self.error(p, false, out),
                },
                St::Colon => match b {
                    b':' => self.st = St::Value { close_ok: false },
                    _ => self.error(p, false, out),
                },
                St::AfterValue => match (self.frames.last().map(|f| f.object), b) {
                    (None, _) => {
                        self.st = St::Value { close_ok: false };
                        continue;
                    }
                    (Some(true), b',') => self.st = St::Key { close_ok: false },
                    (Some(true), b'}') | (Some(false), b']') => self.pop(),
                    (Some(false), b',') => {
                        self.frames.last_mut().expect("checked").index += 1;
                        self.st = St::Value { close_ok: false };
                    }
                    _ => self.error(p, false, out),
                },
                St::Lit(rest) => {
                    if b == rest[0] {
                        self.st = match &rest[1..] {
                            [] => St::AfterValue,
                            more => St::Lit(more),
                        };
                    } else {
                        self.error(p, false, out);
                    }
                }
            }
            if self.errors != errors {
                continue; // the error state looks at the byte again (an NDJSON newline ends it)
            }
            i += 1;
        }
        self.pos += data.len() as u64;
    }

    /// Ends the stream: closes an open token.
    pub fn finish(&mut self, out: &mut Vec<JsonEvent>) {
        match self.st {
            St::Str { .. } | St::Esc { .. } | St::Unicode { .. } | St::Num | St::Error => {
                out.push(JsonEvent::Close { end: self.pos })
            }
            _ => {}
        }
        self.st = St::Value { close_ok: false };
    }

    fn value(
        &mut self,
        b: u8,
        p: u64,
        close_ok: bool,
        names: &mut dyn Resolver,
        out: &mut Vec<JsonEvent>,
    ) {
        match b {
            b'{' | b'[' => {
                if self.frames.len() >= MAX_DEPTH {
                    return self.error(p, false, out);
                }
                let mut f = self.spare.pop().unwrap_or_else(|| Frame {
                    object: false,
                    key: Vec::new(),
                    key_long: false,
                    context: None,
                    index: 0,
                });
                f.object = b == b'{';
                f.key.clear();
                f.key_long = false;
                f.context = None;
                f.index = 0;
                self.frames.push(f);
                self.st = match b {
                    b'{' => St::Key { close_ok: true },
                    _ => St::Value { close_ok: true },
                };
            }
            b']' if close_ok => self.pop(),
            b'"' | b'-' | b'0'..=b'9' => {
                let string = b == b'"';
                out.push(JsonEvent::Open {
                    start: p + u64::from(string),
                    token: if string { Token::String } else { Token::Number },
                    rule: self.rule(names),
                    context: self.context(),
                });
                self.st = if string {
                    St::Str { key: false }
                } else {
                    St::Num
                };
            }
            b't' => self.st = St::Lit(b"rue"),
            b'f' => self.st = St::Lit(b"alse"),
            b'n' => self.st = St::Lit(b"ull"),
            _ => self.error(p, false, out),
        }
    }

    fn rule(&self, names: &dyn Resolver) -> Option<u32> {
        if !names.has_rules() {
            return None;
        }
        let steps: Vec<Step<'_>> = self
            .frames
            .iter()
            .map(|f| match f.object {
                true if f.key_long => Step::Key(None),
                true => Step::Key(Some(&f.key)),
                false => Step::Index(f.index),
            })
            .collect();
        names.rule(&steps)
    }

    /// The context of the nearest enclosing key.
    fn context(&self) -> Option<Arc<[u32]>> {
        self.frames
            .iter()
            .rev()
            .find(|f| f.object)
            .and_then(|f| f.context.clone())
    }

    fn key_bytes(&mut self, bytes: &[u8]) {
        let f = self.frames.last_mut().expect("keys are inside objects");
        let room = MAX_KEY.saturating_sub(f.key.len());
        if bytes.len() > room {
            f.key_long = true;
        }
        f.key.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn key_done(&mut self, names: &mut dyn Resolver) {
        let f = self.frames.last_mut().expect("keys are inside objects");
        f.context = if f.key_long {
            None
        } else {
            names.key_context(&f.key)
        };
    }

    fn pop(&mut self) {
        if let Some(f) = self.frames.pop() {
            self.spare.push(f);
        }
        self.st = St::AfterValue;
    }

    /// A syntax error at `p`: closes an open token there and opens raw text.
    fn error(&mut self, p: u64, in_token: bool, out: &mut Vec<JsonEvent>) {
        self.errors += 1;
        if in_token {
            out.push(JsonEvent::Close { end: p });
        }
        out.push(JsonEvent::Open {
            start: p,
            token: Token::Raw,
            rule: None,
            context: None,
        });
        self.st = St::Error;
    }

    fn reset(&mut self) {
        while let Some(f) = self.frames.pop() {
            self.spare.push(f);
        }
        self.st = St::Value { close_ok: false };
    }
}

#[cfg(test)]
mod tests;
