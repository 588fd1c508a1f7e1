//! Streaming CSV tokenizer that reports where each cell's content lies in the stream.
//!
//! Takes the bytes of a CSV (or TSV) stream in pieces of any size; gives [`CsvEvent`]s: a
//! cell's content opens (after its opening quote when quoted) and closes (before its closing
//! quote), with absolute byte offsets, its column and record, and the header names. It parses
//! as `csv-core` does with its defaults (the property test checks the cells against it): `"`
//! quotes with `""` escapes, `\r`, `\n` or `\r\n` end a record, blank lines are skipped, a UTF-8
//! byte-order mark at the very start is skipped, bytes after a closing quote continue the cell.
//! `csv-core` itself copies unescaped cells out and cannot say where a cell's bytes are, which
//! a span-based transformer needs; hence this small state machine. Constant memory (header
//! names are kept up to 256 bytes). Never fails: every input is some CSV.

/// Longest header name kept; longer names are cut (and cannot match longer rule names).
pub const MAX_NAME: usize = 256;

/// A change in the cell structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsvEvent {
    /// A cell's content starts at `start` (`record` 0 is the first record, the header when
    /// there is one).
    Open {
        start: u64,
        column: u32,
        record: u64,
        quoted: bool,
    },
    /// The open cell's content ends at `end` (exclusive).
    Close { end: u64 },
    /// Header record: the name of `column` (content with `""` unescaped, cut at 256 bytes).
    Header { column: u32, name: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    RecordStart,
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted cell: an escape if another follows, else the closing quote.
    QuoteInQuoted,
    /// Bytes after a closing quote: the cell goes on unquoted.
    Junk,
}

/// The tokenizer state of one stream.
#[derive(Debug)]
pub struct CsvTokenizer {
    delimiter: u8,
    header: bool,
    st: St,
    column: u32,
    record: u64,
    pos: u64,
    name: Vec<u8>,
}

impl CsvTokenizer {
    /// `header`: the first record names the columns ([`CsvEvent::Header`] events).
    pub fn new(delimiter: u8, header: bool) -> CsvTokenizer {
        CsvTokenizer {
            delimiter,
            header,
            st: St::RecordStart,
            column: 0,
            record: 0,
            pos: 0,
            name: Vec::new(),
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether a cell is open (its content started, its end not seen yet).
    pub fn in_cell(&self) -> bool {
        matches!(
            self.st,
            St::Unquoted | St::Quoted | St::QuoteInQuoted | St::Junk
        )
    }

    fn in_header(&self) -> bool {
        self.header && self.record == 0
    }

    /// Parses the next bytes of the stream. The first call must hold the stream's first three
    /// bytes (or all of it), for the byte-order mark.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<CsvEvent>) {
        if self.pos == 0
            && let Some(rest) = data.strip_prefix(b"\xef\xbb\xbf")
        {
            self.pos = 3;
            data = rest;
        }
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            let p = self.pos + i as u64;
            match self.st {
                St::RecordStart if b == b'\r' || b == b'\n' => {}
                St::RecordStart | St::FieldStart => {
                    self.st = St::FieldStart;
                    let quoted = b == b'"';
                    out.push(CsvEvent::Open {
                        start: p + u64::from(quoted),
                        column: self.column,
                        record: self.record,
                        quoted,
                    });
                    if quoted {
                        self.st = St::Quoted;
                    } else if !self.end_cell(b, p, out) {
                        self.st = St::Unquoted;
                        self.keep(b);
                    }
                }
                St::Unquoted | St::Junk => {
                    if !self.end_cell(b, p, out) {
                        // Scan the rest of an unquoted run at once.
                        let run = data[i..]
                            .iter()
                            .position(|&c| c == self.delimiter || c == b'\r' || c == b'\n')
                            .unwrap_or(data.len() - i);
                        if self.in_header() {
                            for &c in &data[i..i + run] {
                                self.keep(c);
                            }
                        }
                        i += run;
                        continue;
                    }
                }
                St::Quoted => {
                    if b == b'"' {
                        self.st = St::QuoteInQuoted;
                    } else {
                        self.keep(b);
                    }
                }
                St::QuoteInQuoted => {
                    if b == b'"' {
                        self.st = St::Quoted;
                        self.keep(b);
                    } else if !self.end_cell(b, p - 1, out) {
                        self.st = St::Junk;
                        self.keep(b);
                    }
                }
            }
            i += 1;
        }
        self.pos += data.len() as u64;
    }

    /// Ends the stream: closes an open cell (an empty one after a trailing delimiter).
    pub fn finish(&mut self, out: &mut Vec<CsvEvent>) {
        let end = self.pos;
        match self.st {
            St::RecordStart => {}
            St::FieldStart => {
                out.push(CsvEvent::Open {
                    start: end,
                    column: self.column,
                    record: self.record,
                    quoted: false,
                });
                self.close(end, out);
            }
            St::QuoteInQuoted => self.close(end - 1, out),
            St::Unquoted | St::Quoted | St::Junk => self.close(end, out),
        }
        self.st = St::RecordStart;
    }

    /// When `b` ends the open cell, closes it at `end` and moves on; false otherwise.
    fn end_cell(&mut self, b: u8, end: u64, out: &mut Vec<CsvEvent>) -> bool {
        if b == self.delimiter {
            self.close(end, out);
            self.column += 1;
            self.st = St::FieldStart;
            true
        } else if b == b'\r' || b == b'\n' {
            self.close(end, out);
            self.column = 0;
            self.record += 1;
            self.st = St::RecordStart;
            true
        } else {
            false
        }
    }

    fn close(&mut self, end: u64, out: &mut Vec<CsvEvent>) {
        out.push(CsvEvent::Close { end });
        if self.in_header() {
            out.push(CsvEvent::Header {
                column: self.column,
                name: std::mem::take(&mut self.name),
            });
        }
    }

    fn keep(&mut self, b: u8) {
        if self.in_header() && self.name.len() < MAX_NAME {
            self.name.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `(record, column, start, end, quoted)`.
    type Cell = (u64, u32, u64, u64, bool);

    /// Every cell and the header names, fed in pieces cut at `cuts`.
    fn cells(data: &[u8], cuts: &[usize]) -> (Vec<Cell>, Vec<Vec<u8>>) {
        let mut t = CsvTokenizer::new(b',', true);
        let mut ev = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&data.len())) {
            let c = c.max(at).min(data.len());
            t.feed(&data[at..c], &mut ev);
            at = c;
        }
        t.finish(&mut ev);
        let (mut out, mut names, mut open) = (Vec::new(), Vec::new(), None);
        for e in ev {
            match e {
                CsvEvent::Open {
                    start,
                    column,
                    record,
                    quoted,
                } => {
                    assert!(open.is_none(), "open inside open");
                    open = Some((record, column, start, quoted));
                }
                CsvEvent::Close { end } => {
                    let (r, c, s, q) = open.take().expect("close without open");
                    out.push((r, c, s, end, q));
                }
                CsvEvent::Header { name, .. } => names.push(name),
            }
        }
        assert!(open.is_none());
        (out, names)
    }

    /// The unescaped content of a cell span, as csv-core gives it.
    fn content(data: &[u8], start: u64, end: u64, quoted: bool) -> Vec<u8> {
        let span = &data[start as usize..end as usize];
        if !quoted {
            return span.to_vec();
        }
        let (mut out, mut inside, mut i) = (Vec::new(), true, 0);
        while i < span.len() {
            match (inside, span[i], span.get(i + 1)) {
                (true, b'"', Some(b'"')) => {
                    out.push(b'"');
                    i += 2;
                    continue;
                }
                (true, b'"', _) => inside = false,
                (_, b, _) => out.push(b),
            }
            i += 1;
        }
        out
    }

    /// csv-core's records, each a list of unescaped cells.
    fn reference(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut r = csv_core::Reader::new();
        let mut out = vec![0u8; data.len() + 1];
        let (mut records, mut record, mut input) = (Vec::new(), Vec::new(), data);
        let mut field = Vec::new();
        loop {
            let (res, nin, nout) = r.read_field(input, &mut out);
            input = &input[nin..];
            field.extend_from_slice(&out[..nout]);
            match res {
                csv_core::ReadFieldResult::Field { record_end } => {
                    record.push(std::mem::take(&mut field));
                    if record_end {
                        records.push(std::mem::take(&mut record));
                    }
                }
                csv_core::ReadFieldResult::End => return records,
                csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::OutputFull => {}
            }
        }
    }

    fn ours(data: &[u8], cuts: &[usize]) -> Vec<Vec<Vec<u8>>> {
        let mut records: Vec<Vec<Vec<u8>>> = Vec::new();
        for (r, c, s, e, q) in cells(data, cuts).0 {
            if records.len() as u64 <= r {
                records.push(Vec::new());
            }
            assert_eq!(records[r as usize].len() as u32, c);
            records[r as usize].push(content(data, s, e, q));
        }
        records
    }

    #[test]
    fn cells_quotes_and_headers() {
        let data = b"\xef\xbb\xbfname,\"s,sn\"\r\n\r\nann,\"1\"\"2\"\nbob,\"x\"y,\n";
        let (c, names) = cells(data, &[]);
        assert_eq!(names, vec![b"name".to_vec(), b"s,sn".to_vec()]);
        let texts: Vec<(u64, u32, &[u8])> = c
            .iter()
            .map(|&(r, col, s, e, _)| (r, col, &data[s as usize..e as usize]))
            .collect();
        assert_eq!(
            texts,
            vec![
                (0, 0, &b"name"[..]),
                (0, 1, b"s,sn"),
                (1, 0, b"ann"),
                (1, 1, b"1\"\"2"),
                (2, 0, b"bob"),
                (2, 1, b"x\"y"),
                (2, 2, b""),
            ]
        );
        assert_eq!(ours(data, &[]), reference(data));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn cells_match_csv_core_however_the_input_is_cut(
            data in proptest::collection::vec(
                prop::sample::select(vec![b'a', b'b', b',', b'"', b'\n', b'\r', b' ']), 0..40),
            cuts in proptest::collection::vec(3usize..40, 0..4),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let whole = cells(&data, &[]);
            prop_assert_eq!(&cells(&data, &cuts), &whole);
            prop_assert_eq!(ours(&data, &cuts), reference(&data));
        }
    }
}
