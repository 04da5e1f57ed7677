//! Reading PostgreSQL's binary COPY format on the fly: rows are counted and
//! summed into an order-independent checksum while the bytes pass through
//! to the chunker, so nothing is staged and restored tables can be checked
//! whatever their physical row order. Rows are hashed with XXH3-128: this
//! runs once per row on tens of millions of rows, and it guards against
//! mistakes, not adversaries (the repository's own hashes are BLAKE3).
//!
//! Format: an 11-byte signature, a 32-bit flags word and a 32-bit header
//! extension length (plus extension); then per row a 16-bit field count and,
//! per field, a 32-bit length (-1 for NULL) and the bytes; a count of -1 ends
//! the data. All integers are big-endian.

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Row count and checksum of a table (or part of one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowStats {
    pub rows: u64,
    /// Wrapping sum of each row's XXH3-128.
    pub sum: u128,
}

impl RowStats {
    pub fn add(&mut self, other: RowStats) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }
    pub fn checksum(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

#[derive(Debug, Default)]
enum State {
    /// Collecting the 19 fixed header bytes.
    #[default]
    Header,
    /// Skipping the header extension.
    Extension(u32),
    /// Reading a row's 2-byte field count.
    Count,
    /// Reading a field's 4-byte length.
    Length,
    /// Inside a field's data.
    Data(u32),
    Done,
}

/// Parses a binary COPY stream incrementally.
#[derive(Default)]
pub struct Scanner {
    state: State,
    small: Vec<u8>,
    fields_left: u16,
    /// Where the current row began in the data being fed (`None`: in an
    /// earlier feed, and its bytes so far are in `carry`).
    row_start: Option<usize>,
    carry: Vec<u8>,
    pub stats: RowStats,
    error: Option<String>,
    /// Where items (header, rows, end marker) ended in the last `feed`:
    /// offset just past the item, and the row's hash (0 for other items).
    pub boundaries: Vec<(usize, u64)>,
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// The stream is complete and well formed.
    pub fn finish(&self) -> Result<RowStats, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.state {
            State::Done => Ok(self.stats),
            _ => Err(format!("COPY data ended early (state {:?})", self.state)),
        }
    }

    fn in_row(&self) -> bool {
        matches!(self.state, State::Length | State::Data(_))
            || (matches!(self.state, State::Count) && !self.small.is_empty())
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.boundaries.clear();
        self.row_start = if self.in_row() { None } else { Some(0) };
        let mut at = 0;
        while at < data.len() && self.error.is_none() {
            at = self.step(data, at);
        }
        // A row still open continues in the next feed.
        if self.in_row() {
            self.carry
                .extend_from_slice(&data[self.row_start.unwrap_or(0)..]);
        }
    }

    /// Takes up to `n` bytes of `data[at..]` into `small`; the new offset, and
    /// whether `small` is complete.
    fn gather(&mut self, data: &[u8], at: usize, n: usize) -> (usize, bool) {
        let take = (n - self.small.len()).min(data.len() - at);
        self.small.extend_from_slice(&data[at..at + take]);
        (at + take, self.small.len() == n)
    }

    fn end_row(&mut self, data: &[u8], end: usize) {
        let h = match self.row_start {
            Some(start) if self.carry.is_empty() => xxhash_rust::xxh3::xxh3_128(&data[start..end]),
            _ => {
                self.carry.extend_from_slice(&data[..end]);
                let h = xxhash_rust::xxh3::xxh3_128(&self.carry);
                self.carry.clear();
                h
            }
        };
        self.boundaries.push((end, h as u64));
        self.stats.rows += 1;
        self.stats.sum = self.stats.sum.wrapping_add(h);
        self.state = State::Count;
    }

    fn field_done(&mut self, data: &[u8], at: usize) {
        self.fields_left -= 1;
        if self.fields_left == 0 {
            self.end_row(data, at);
        } else {
            self.state = State::Length;
        }
    }

    /// Advances over `data[at..]` by one state step; returns the new offset.
    fn step(&mut self, data: &[u8], at: usize) -> usize {
        match self.state {
            State::Header => {
                let (at, full) = self.gather(data, at, 19);
                if full {
                    if &self.small[..11] != SIGNATURE {
                        self.error = Some("not binary COPY data (bad signature)".into());
                        return data.len();
                    }
                    let ext = u32::from_be_bytes(self.small[15..19].try_into().expect("4 bytes"));
                    self.small.clear();
                    if ext > 0 {
                        self.state = State::Extension(ext);
                    } else {
                        self.state = State::Count;
                        self.boundaries.push((at, 0));
                    }
                }
                at
            }
            State::Extension(left) => {
                let take = (left as usize).min(data.len() - at);
                let left = left - take as u32;
                if left == 0 {
                    self.state = State::Count;
                    self.boundaries.push((at + take, 0));
                } else {
                    self.state = State::Extension(left);
                }
                at + take
            }
            State::Count => {
                if self.small.is_empty() {
                    self.row_start = Some(at);
                    self.carry.clear();
                    // Most rows lie whole in the data: read them in one go.
                    if let Some(end) = whole_row(data, at) {
                        self.end_row(data, end);
                        return end;
                    }
                }
                let (at, full) = self.gather(data, at, 2);
                if full {
                    let n = i16::from_be_bytes([self.small[0], self.small[1]]);
                    self.small.clear();
                    if n == -1 {
                        self.state = State::Done;
                        self.boundaries.push((at, 0));
                    } else if n < 0 {
                        self.error = Some(format!("bad field count {n}"));
                    } else if n == 0 {
                        self.end_row(data, at);
                    } else {
                        self.fields_left = n as u16;
                        self.state = State::Length;
                    }
                }
                at
            }
            State::Length => {
                let (at, full) = self.gather(data, at, 4);
                if full {
                    let len = i32::from_be_bytes(self.small[..4].try_into().expect("4 bytes"));
                    self.small.clear();
                    if len > 0 {
                        self.state = State::Data(len as u32);
                    } else {
                        self.field_done(data, at);
                    }
                }
                at
            }
            State::Data(left) => {
                let take = (left as usize).min(data.len() - at);
                let left = left - take as u32;
                if left == 0 {
                    self.field_done(data, at + take);
                } else {
                    self.state = State::Data(left);
                }
                at + take
            }
            State::Done => {
                self.error = Some("data after the end of COPY".into());
                data.len()
            }
        }
    }
}

/// The end of the row starting at `data[at..]` if all of it is there (and
/// it is a row, not the end marker).
fn whole_row(data: &[u8], at: usize) -> Option<usize> {
    let head = data.get(at..at + 2)?;
    let n = i16::from_be_bytes([head[0], head[1]]);
    if n < 0 {
        return None;
    }
    let mut pos = at + 2;
    for _ in 0..n {
        let len = data.get(pos..pos + 4)?;
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        pos += 4 + len.max(0) as usize;
    }
    (pos <= data.len()).then_some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rows: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        for r in rows {
            v.extend_from_slice(&(r.len() as i16).to_be_bytes());
            for f in r.iter() {
                match f {
                    None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(b) => {
                        v.extend_from_slice(&(b.len() as i32).to_be_bytes());
                        v.extend_from_slice(b);
                    }
                }
            }
        }
        v.extend_from_slice(&(-1i16).to_be_bytes());
        v
    }

    #[test]
    fn counts_rows_in_any_split_and_any_order() {
        let a: &[Option<&[u8]>] = &[Some(b"1"), None, Some(b"hello")];
        let b: &[Option<&[u8]>] = &[Some(b"2"), Some(b""), Some(b"x")];
        let s1 = stream(&[a, b]);
        let s2 = stream(&[b, a]);
        let whole = {
            let mut sc = Scanner::new();
            sc.feed(&s1);
            sc.finish().unwrap()
        };
        assert_eq!(whole.rows, 2);
        for split in 1..s2.len() {
            let mut sc = Scanner::new();
            for piece in s2.chunks(split) {
                sc.feed(piece);
            }
            assert_eq!(sc.finish().unwrap(), whole, "split {split}");
        }
        let mut sc = Scanner::new();
        sc.feed(&s1[..s1.len() - 1]);
        assert!(sc.finish().is_err());
    }
}
