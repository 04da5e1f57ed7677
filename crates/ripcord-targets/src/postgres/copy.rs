//! Reading PostgreSQL's binary COPY format on the fly: rows are counted and
//! summed into an order-independent checksum while the bytes pass through
//! to the chunker, so nothing is staged and restored tables can be checked
//! whatever their physical row order.
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
    /// Wrapping sum of each row's 128-bit BLAKE3 prefix.
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

#[derive(Debug)]
enum State {
    /// Collecting the 19 fixed header bytes.
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
pub struct Scanner {
    state: State,
    small: Vec<u8>,
    fields_left: u16,
    row: blake3::Hasher,
    pub stats: RowStats,
    error: Option<String>,
    /// Where items (header, rows, end marker) ended in the last `feed`:
    /// offset just past the item, and a hash of the row (0 for others).
    pub boundaries: Vec<(usize, u64)>,
    fed: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Header,
            small: Vec::with_capacity(19),
            fields_left: 0,
            row: blake3::Hasher::new(),
            stats: RowStats::default(),
            error: None,
            boundaries: Vec::new(),
            fed: 0,
        }
    }
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

    /// Takes `n` bytes into `small`; true when it holds `n`.
    fn gather(&mut self, data: &mut &[u8], n: usize) -> bool {
        let take = (n - self.small.len()).min(data.len());
        self.small.extend_from_slice(&data[..take]);
        *data = &data[take..];
        self.small.len() == n
    }

    fn end_row(&mut self, at: usize) {
        let h = self.row.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&h.as_bytes()[..16]);
        self.boundaries
            .push((at, u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))));
        self.stats.rows += 1;
        self.stats.sum = self.stats.sum.wrapping_add(u128::from_le_bytes(b));
        self.row.reset();
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.boundaries.clear();
        self.fed = data.len();
        self.feed_inner(data);
    }

    /// Offset in the current `feed` of the first byte of `rest`.
    fn pos(&self, rest: &[u8]) -> usize {
        self.fed - rest.len()
    }

    fn feed_inner(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() {
            match self.state {
                State::Header => {
                    if self.gather(&mut data, 19) {
                        if &self.small[..11] != SIGNATURE {
                            self.error = Some("not binary COPY data (bad signature)".into());
                            return;
                        }
                        let ext =
                            u32::from_be_bytes(self.small[15..19].try_into().expect("4 bytes"));
                        self.small.clear();
                        self.state = if ext > 0 {
                            State::Extension(ext)
                        } else {
                            State::Count
                        };
                    }
                }
                State::Extension(left) => {
                    let take = (left as usize).min(data.len());
                    data = &data[take..];
                    let left = left - take as u32;
                    self.state = if left == 0 {
                        State::Count
                    } else {
                        State::Extension(left)
                    };
                }
                State::Count => {
                    if self.gather(&mut data, 2) {
                        let n = i16::from_be_bytes([self.small[0], self.small[1]]);
                        self.small.clear();
                        if n == -1 {
                            self.state = State::Done;
                            let at = self.pos(data);
                            self.boundaries.push((at, 0));
                        } else if n < 0 {
                            self.error = Some(format!("bad field count {n}"));
                        } else {
                            self.row.update(&n.to_be_bytes());
                            self.fields_left = n as u16;
                            if n == 0 {
                                let at = self.pos(data);
                                self.end_row(at);
                            } else {
                                self.state = State::Length;
                            }
                        }
                    }
                }
                State::Length => {
                    if self.gather(&mut data, 4) {
                        let len = i32::from_be_bytes(self.small[..4].try_into().expect("4 bytes"));
                        self.small.clear();
                        self.row.update(&len.to_be_bytes());
                        if len > 0 {
                            self.state = State::Data(len as u32);
                        } else {
                            let at = self.pos(data);
                            self.next_field(at);
                        }
                    }
                }
                State::Data(left) => {
                    let take = (left as usize).min(data.len());
                    self.row.update(&data[..take]);
                    data = &data[take..];
                    let left = left - take as u32;
                    if left == 0 {
                        let at = self.pos(data);
                        self.next_field(at);
                    } else {
                        self.state = State::Data(left);
                    }
                }
                State::Done => {
                    self.error = Some("data after the end of COPY".into());
                }
            }
        }
    }

    fn next_field(&mut self, at: usize) {
        self.fields_left -= 1;
        if self.fields_left == 0 {
            self.end_row(at);
            self.state = State::Count;
        } else {
            self.state = State::Length;
        }
    }
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
