//! The snapshot/binlog handoff: where a binlog row's key falls among the snapshot's chunks, in
//! the server's order for the key ([`KeyOrder`]), so a transaction that began before a chunk's
//! position is skipped for the keys of that chunk (its rows already hold it) and applied for
//! the others. See the module doc of `source` and ARCHITECTURE.md.

use super::binlog::BinlogPos;
use super::snapshot::Chunk;
pub(super) use super::snapshot::ImageWeights;
use crate::plan::Compiled;
use ferry_operators::Value;
use std::collections::{BTreeMap, HashMap};

/// `(file number, offset)` of a position: a compact, ordered key for the per-row handoff check
/// and the metadata position.
pub(super) fn pos_key(p: &BinlogPos) -> PosKey {
    (p.file_index().unwrap_or(0) as u32, p.pos)
}

/// A binlog position as `(file number, offset)`, ordered.
pub(super) type PosKey = (u32, u64);

/// Per selected table: how binlog rows find their chunk.
pub(super) struct ChunkIndex {
    /// (lower bound, position) of the table's chunks sorted by bound, when every key column
    /// orders in a way ferry reproduces ([`KeyOrder`]); `None` for other keys.
    pub(super) ranges: Option<Vec<(Option<Vec<KeyPart>>, PosKey)>>,
    /// The highest chunk position of the table (the window in which other keys are always
    /// applied ends here).
    pub(super) max_pos: PosKey,
    key: Vec<usize>,
    /// How each key column orders.
    orders: Vec<KeyOrder>,
    /// The position of a table read as one chunk: every row of it is in that chunk, whatever
    /// its key (or none).
    single: Option<PosKey>,
}

/// How a key column's values order on the server, when ferry can reproduce it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyOrder {
    /// Integers and temporal values: as integers.
    Int,
    /// Exact decimals: numerically.
    Decimal,
    /// Binary strings, and text in a binary `NO PAD` collation of UTF-8 or ASCII: bytewise.
    Bytes,
    /// Text in a binary `PAD SPACE` collation (`utf8mb4_bin`, …): bytewise, as if the shorter
    /// value were padded with spaces.
    PadBytes,
    /// Text in any other collation: the server's sort key (`WEIGHT_STRING`, of the value
    /// padded to the column's length in a `PAD SPACE` collation), bytewise. Chunk bounds get
    /// theirs at start, binlog rows in the snapshot window from the reader task.
    Weight,
}

/// The order of a key column of type `ty` in `collation`; `None` when ferry cannot reproduce
/// it (text without a known collation, and types without an order here).
pub(super) fn key_order(ty: &ferry_operators::ColumnType, collation: Option<&str>) -> Option<KeyOrder> {
    use ferry_operators::ColumnType as T;
    match ty {
        T::Int { .. } | T::Year | T::Date | T::Time { .. } | T::DateTime { .. } | T::Timestamp { .. } => {
            Some(KeyOrder::Int)
        }
        T::Decimal { .. } => Some(KeyOrder::Decimal),
        T::Bytes { .. } => Some(KeyOrder::Bytes),
        T::String { .. } => {
            let c = collation?.to_ascii_lowercase();
            let (charset, rest) = c.split_once('_')?;
            // UTF-8 bytes order like code points, which is how these collations compare.
            let utf8 = matches!(charset, "utf8mb4" | "utf8mb3" | "utf8" | "ascii");
            match rest {
                "bin" if utf8 => Some(KeyOrder::PadBytes),
                "nopad_bin" if utf8 => Some(KeyOrder::Bytes),
                _ => Some(KeyOrder::Weight),
            }
        }
        _ => None,
    }
}

/// One key column's value in a form whose `Ord` is the server's order for its column (values
/// of one column always take the same variant).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum KeyPart {
    Int(i128),
    Decimal(DecimalKey),
    Bytes(Vec<u8>),
    Pad(PadKey),
}

/// An exact decimal ordered numerically: sign, then the integer digits without leading zeros,
/// then the fraction digits without trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DecimalKey {
    negative: bool,
    int: String,
    frac: String,
}

impl DecimalKey {
    fn parse(s: &str) -> Option<DecimalKey> {
        let (negative, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (int, frac) = (int.trim_start_matches('0').to_string(), frac.trim_end_matches('0').to_string());
        // Zero has no sign.
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(DecimalKey { negative, int, frac })
    }

    fn magnitude_cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for DecimalKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.negative, other.negative) {
            (false, false) => self.magnitude_cmp(other),
            (true, true) => other.magnitude_cmp(self),
            (a, _) => {
                if a {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            }
        }
    }
}

impl PartialOrd for DecimalKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Bytes compared as if the shorter were padded with spaces (a `PAD SPACE` collation of UTF-8
/// text).
#[derive(Debug, Clone)]
pub(super) struct PadKey(Vec<u8>);

impl Ord for PadKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (&self.0, &other.0);
        let n = a.len().min(b.len());
        a[..n].cmp(&b[..n]).then_with(|| {
            // The longer one's rest against spaces: its first non-space byte decides.
            let rest_vs_spaces =
                |r: &[u8]| r.iter().find(|&&x| x != b' ').map_or(std::cmp::Ordering::Equal, |x| x.cmp(&b' '));
            if a.len() >= b.len() {
                rest_vs_spaces(&a[n..])
            } else {
                rest_vs_spaces(&b[n..]).reverse()
            }
        })
    }
}

impl PartialOrd for PadKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PadKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for PadKey {}

/// A key value as an integer with the same order as the server's, when there is one.
pub(super) fn as_i128(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(*i as i128),
        Value::UInt(u) => Some(*u as i128),
        Value::Year(y) => Some(*y as i128),
        Value::Time(t) | Value::Timestamp(t) => Some(*t as i128),
        Value::Date(d) => d.to_days().map(i128::from),
        Value::DateTime(dt) => dt.to_epoch_micros().map(i128::from),
        _ => None,
    }
}

pub(super) fn key_part(v: &Value, order: KeyOrder) -> Option<KeyPart> {
    match (order, v) {
        (KeyOrder::Int, v) => as_i128(v).map(KeyPart::Int),
        (KeyOrder::Decimal, Value::Decimal(d)) => DecimalKey::parse(d).map(KeyPart::Decimal),
        (KeyOrder::Bytes, Value::Bytes(b)) => Some(KeyPart::Bytes(b.clone())),
        (KeyOrder::Bytes, Value::Text(t)) => Some(KeyPart::Bytes(t.as_bytes().to_vec())),
        (KeyOrder::PadBytes, Value::Text(t)) => Some(KeyPart::Pad(PadKey(t.as_bytes().to_vec()))),
        _ => None,
    }
}

/// The key of `row`; `weights` are the server's sort keys of its [`KeyOrder::Weight`] columns,
/// in key order (no key without them).
pub(super) fn key_of(
    row: &[Value],
    key: &[usize],
    orders: &[KeyOrder],
    weights: Option<&[Option<Vec<u8>>]>,
) -> Option<Vec<KeyPart>> {
    let mut weights = weights.map(|w| w.iter());
    key.iter()
        .zip(orders)
        .map(|(&k, &o)| match o {
            KeyOrder::Weight => weights.as_mut()?.next()?.clone().map(KeyPart::Bytes),
            o => row.get(k).and_then(|v| key_part(v, o)),
        })
        .collect()
}

impl ChunkIndex {
    /// Whether a transaction that began at `start` is already in the snapshot rows of `row`.
    pub(super) fn in_snapshot(&self, row: &[Value], weights: Option<&[Option<Vec<u8>>]>, start: PosKey) -> bool {
        if let Some(p) = self.single {
            return start < p;
        }
        let Some(ranges) = &self.ranges else { return false };
        let Some(v) = key_of(row, &self.key, &self.orders, weights) else { return false };
        let i = ranges.partition_point(|(lo, _)| lo.as_ref().is_none_or(|lo| *lo <= v));
        start < ranges[i.saturating_sub(1)].1
    }
}

pub(super) fn build_index(
    plan: &Compiled,
    chunks: &[Chunk],
    positions: &[(u32, BinlogPos)],
    collations: &[Vec<Option<String>>],
    bound_weights: &HashMap<u32, Vec<Option<Vec<u8>>>>,
) -> Vec<ChunkIndex> {
    let pos: BTreeMap<u32, PosKey> = positions.iter().map(|(c, p)| (*c, pos_key(p))).collect();
    plan.catalog
        .tables
        .iter()
        .enumerate()
        .map(|(t, schema)| {
            let mine: Vec<&Chunk> = chunks.iter().filter(|c| c.table as usize == t).collect();
            let max_pos = mine.iter().filter_map(|c| pos.get(&c.id)).max().copied().unwrap_or((0, 0));
            let key = schema.row_key().to_vec();
            let orders: Option<Vec<KeyOrder>> = key
                .iter()
                .map(|&k| {
                    let collation = collations.get(t).and_then(|c| c.get(k)).and_then(|c| c.as_deref());
                    key_order(&schema.columns[k].ty, collation)
                })
                .collect();
            let orders = orders.unwrap_or_default();
            let bounds: Option<Vec<(Option<Vec<KeyPart>>, PosKey)>> = mine
                .iter()
                .map(|c| {
                    let lower = match &c.lower {
                        None => None,
                        Some(l) => Some(key_of(
                            l,
                            &(0..l.len()).collect::<Vec<_>>(),
                            &orders,
                            bound_weights.get(&c.id).map(Vec::as_slice),
                        )?),
                    };
                    Some((lower, pos.get(&c.id).copied().unwrap_or((0, 0))))
                })
                .collect();
            let ranges = bounds.filter(|_| !key.is_empty() && orders.len() == key.len()).map(|mut r| {
                r.sort_by(|a, b| a.0.cmp(&b.0));
                r
            });
            let single = (mine.len() == 1).then(|| pos.get(&mine[0].id).copied().unwrap_or((0, 0)));
            ChunkIndex { ranges, max_pos, key, orders, single }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_operators::ColumnType;
    use proptest::prelude::*;

    fn dec(units: i64, scale: u32) -> String {
        // `units` / 10^scale as text, with a few redundant zeros on both sides.
        let neg = units < 0;
        let digits = format!("{:0>width$}", units.unsigned_abs(), width = scale as usize + 1);
        let (int, frac) = digits.split_at(digits.len() - scale as usize);
        format!("{}00{int}.{frac}00", if neg { "-" } else { "" })
    }

    proptest! {
        #[test]
        fn decimal_keys_order_like_their_numbers(a in -10_000_000i64..10_000_000, b in -10_000_000i64..10_000_000, sa in 0u32..5, sb in 0u32..5) {
            let (x, y) = (DecimalKey::parse(&dec(a, sa)).unwrap(), DecimalKey::parse(&dec(b, sb)).unwrap());
            // Compare a / 10^sa with b / 10^sb exactly, on a common scale.
            let want = (a as i128 * 10i128.pow(sb)).cmp(&(b as i128 * 10i128.pow(sa)));
            prop_assert_eq!(x.cmp(&y), want, "{} vs {}", dec(a, sa), dec(b, sb));
        }

        #[test]
        fn pad_keys_order_like_space_padded_bytes(a in "[ -~\t]{0,6}", b in "[ -~\t]{0,6}") {
            let n = a.len().max(b.len());
            let pad = |s: &str| format!("{s:<n$}");
            let key = |s: &str| PadKey(s.as_bytes().to_vec());
            prop_assert_eq!(key(&a).cmp(&key(&b)), pad(&a).cmp(&pad(&b)));
        }
    }

    #[test]
    fn zero_has_no_sign_and_malformed_decimals_have_no_key() {
        assert_eq!(DecimalKey::parse("-0.000"), DecimalKey::parse("0"));
        assert!(DecimalKey::parse("-0.5").unwrap() < DecimalKey::parse("0").unwrap());
        assert!(DecimalKey::parse("1e5").is_none());
        assert!(DecimalKey::parse("-").is_none());
    }

    #[test]
    fn binary_utf8_collations_order_text_keys_bytewise_and_the_others_by_server_sort_keys() {
        let text = ColumnType::String { max_chars: Some(10), fixed: false };
        assert_eq!(key_order(&text, Some("utf8mb4_bin")), Some(KeyOrder::PadBytes));
        assert_eq!(key_order(&text, Some("utf8mb4_nopad_bin")), Some(KeyOrder::Bytes));
        assert_eq!(key_order(&text, Some("ascii_bin")), Some(KeyOrder::PadBytes));
        assert_eq!(key_order(&text, Some("utf8mb4_general_ci")), Some(KeyOrder::Weight));
        assert_eq!(
            key_order(&text, Some("latin1_bin")),
            Some(KeyOrder::Weight),
            "latin1 bytes do not order like code points"
        );
        assert_eq!(key_order(&text, None), None);
        assert_eq!(key_order(&ColumnType::Decimal { precision: 10, scale: 2 }, None), Some(KeyOrder::Decimal));
    }
}
