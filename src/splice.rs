//! The rendered output as pieces: unchanged stretches of the inputs, shared with
//! their [`Source`](crate::source::Source)s, and the emitted text between them.
//! It is written, compared with an existing file and measured piece by piece,
//! so a render never holds a second copy of a large input.

use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::Arc;

/// One stretch of the output.
#[derive(Clone)]
enum Piece {
    /// Bytes of an input, unchanged.
    Shared(Arc<String>, Range<usize>),
    /// Emitted text: a substituted value, a document separator, JSON.
    Owned(Vec<u8>),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Shared(text, r) => text.as_bytes().get(r.clone()).unwrap_or_default(),
            Piece::Owned(s) => s,
        }
    }
}

/// A rendered output, ready to be written.
#[derive(Clone, Default)]
pub struct Output {
    pieces: Vec<Piece>,
    len: usize,
}

impl std::fmt::Debug for Output {
    // The pieces hold substituted secret values: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("len", &self.len)
            .field("pieces", &self.pieces.len())
            .finish()
    }
}

/// Reads and compares in blocks of this size.
const BLOCK: usize = 64 * 1024;

impl Output {
    /// `text` with each `(range, replacement)` edit applied; edits are sorted by
    /// start and do not overlap (an overlapping one is skipped).
    pub(crate) fn spliced(text: &Arc<String>, edits: Vec<(Range<usize>, String)>) -> Output {
        let mut out = Output::default();
        let mut at = 0;
        for (r, t) in edits {
            if r.start < at {
                continue;
            }
            out.share(text, at..r.start);
            out.push(t);
            at = r.end;
        }
        out.share(text, at..text.len());
        out
    }

    /// Appends `text[range]`.
    fn share(&mut self, text: &Arc<String>, range: Range<usize>) {
        if range.start < range.end && range.end <= text.len() {
            self.len += range.len();
            self.pieces.push(Piece::Shared(Arc::clone(text), range));
        }
    }

    /// Appends emitted text.
    pub(crate) fn push(&mut self, text: String) {
        self.push_bytes(text.into_bytes());
    }

    fn push_bytes(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.pieces.push(Piece::Owned(bytes));
        }
    }

    /// Appends another output.
    pub(crate) fn append(&mut self, other: Output) {
        self.len += other.len;
        self.pieces.extend(other.pieces);
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the output is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The output's pieces, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().map(Piece::bytes)
    }

    /// The last byte, if any.
    pub(crate) fn last_byte(&self) -> Option<u8> {
        self.chunks()
            .filter(|c| !c.is_empty())
            .last()?
            .last()
            .copied()
    }

    /// Whether the output starts with `prefix`.
    pub(crate) fn starts_with(&self, prefix: &[u8]) -> bool {
        let mut rest = prefix;
        for c in self.chunks() {
            if rest.is_empty() {
                break;
            }
            let n = rest.len().min(c.len());
            if c[..n] != rest[..n] {
                return false;
            }
            rest = &rest[n..];
        }
        rest.is_empty()
    }

    /// The whole output in one buffer (tests, small outputs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for c in self.chunks() {
            v.extend_from_slice(c);
        }
        v
    }

    /// Writes every piece to `w`, then flushes it. Small pieces (the emitted
    /// values) are gathered in a buffer; large stretches of input go straight through.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(BLOCK, w);
        for c in self.chunks() {
            w.write_all(c)?;
        }
        w.flush()
    }

    /// Whether `r` holds exactly these bytes, read a block at a time.
    pub fn same_as(&self, r: &mut dyn Read) -> io::Result<bool> {
        let mut buf = vec![0u8; BLOCK];
        for c in self.chunks() {
            let mut c = c;
            while !c.is_empty() {
                let want = c.len().min(BLOCK);
                match r.read(&mut buf[..want]) {
                    Ok(0) => return Ok(false),
                    Ok(n) if buf[..n] != c[..n] => return Ok(false),
                    Ok(n) => c = &c[n..],
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // Nothing may follow.
        loop {
            match r.read(&mut buf[..1]) {
                Ok(0) => return Ok(true),
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl std::hash::Hash for Output {
    /// Hashes the bytes, whatever the pieces: equal outputs hash alike.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.len);
        for c in self.chunks() {
            state.write(c);
        }
    }
}

impl From<Vec<u8>> for Output {
    fn from(bytes: Vec<u8>) -> Output {
        let mut out = Output::default();
        out.push_bytes(bytes);
        out
    }
}
