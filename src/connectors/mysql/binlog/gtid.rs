//! MySQL GTID sets (`uuid:1-5:7,uuid2:1-3`): parsed, printed, grown by one transaction's GTID,
//! and turned into the `COM_BINLOG_DUMP_GTID` request's SIDs. (MariaDB's `domain-server-seq`
//! positions are in the parent module.)

use mysql_common::packets::Sid;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A MySQL GTID set: per source UUID (lowercase, with dashes), sorted disjoint inclusive ranges
/// of transaction numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet(BTreeMap<String, Vec<(u64, u64)>>);

impl GtidSet {
    /// Parses `uuid:a-b:c,uuid2:d` (whitespace and newlines, as `SHOW MASTER STATUS` prints
    /// them, are ignored; an empty text is the empty set).
    pub fn parse(text: &str) -> Result<GtidSet, String> {
        let mut set = GtidSet::default();
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for part in compact.split(',').filter(|p| !p.is_empty()) {
            let bad = |why: &str| format!("bad MySQL GTID set `{part}`: {why} (expected uuid:1-5[:7...])");
            let mut it = part.split(':');
            let uuid = it.next().unwrap_or_default().to_ascii_lowercase();
            let hex: Vec<u8> = uuid.bytes().filter(|&b| b != b'-').collect();
            if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad("not a UUID"));
            }
            let mut any = false;
            for range in it {
                any = true;
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                let a: u64 = a.parse().map_err(|_| bad("not a number"))?;
                let b: u64 = b.parse().map_err(|_| bad("not a number"))?;
                if a == 0 || b < a {
                    return Err(bad("a range must be 1 or more and not descend"));
                }
                set.add_range(&uuid, a, b);
            }
            if !any {
                return Err(bad("no transaction numbers"));
            }
        }
        Ok(set)
    }

    /// Whether no transaction is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds transaction `gno` of `uuid`.
    pub fn add(&mut self, uuid: &str, gno: u64) {
        self.add_range(&uuid.to_ascii_lowercase(), gno, gno);
    }

    /// Adds transactions `a..=b` of `uuid`.
    pub fn add_range(&mut self, uuid: &str, a: u64, b: u64) {
        let ranges = self.0.entry(uuid.to_ascii_lowercase()).or_default();
        ranges.push((a, b));
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for &(x, y) in ranges.iter() {
            match merged.last_mut() {
                Some(last) if x <= last.1.saturating_add(1) => last.1 = last.1.max(y),
                _ => merged.push((x, y)),
            }
        }
        *ranges = merged;
    }

    /// The set as the SIDs of a `COM_BINLOG_DUMP_GTID` request (half-open intervals).
    pub fn sids(&self) -> Result<Vec<Sid<'static>>, String> {
        self.0
            .iter()
            .map(|(uuid, ranges)| {
                let text = format!(
                    "{uuid}:{}",
                    ranges
                        .iter()
                        .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
                        .collect::<Vec<_>>()
                        .join(":")
                );
                Sid::from_str(&text).map_err(|e| format!("GTID set `{text}`: {e}"))
            })
            .collect()
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (uuid, ranges) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(uuid)?;
            for (a, b) in ranges {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

/// A UUID's 16 bytes as MySQL prints them.
pub fn uuid_text(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "a0000000-0000-0000-0000-00000000000b";

    #[test]
    fn gtid_sets_parse_merge_and_print_as_mysql_does() {
        let s = GtidSet::parse(&format!("{}:1-5:7,\n{U2}:3", U1.to_uppercase())).unwrap();
        assert_eq!(s.to_string(), format!("{U1}:1-5:7,{U2}:3"));
        let mut t = s.clone();
        t.add(U1, 6);
        assert_eq!(t.to_string(), format!("{U1}:1-7,{U2}:3"));
        assert!(GtidSet::parse("").unwrap().is_empty());
        assert!(GtidSet::parse("nope:1").is_err());
        assert!(GtidSet::parse(&format!("{U1}:5-2")).is_err());
        assert!(GtidSet::parse(U1).is_err());
        let sids = s.sids().unwrap();
        assert_eq!(sids.len(), 2);
        // The request's intervals are half-open.
        let iv: Vec<(u64, u64)> = sids[0].intervals().iter().map(|i| (i.start(), i.end())).collect();
        assert_eq!(iv, vec![(1, 6), (7, 8)]);
    }

    proptest! {
        #[test]
        fn adding_transactions_one_by_one_equals_parsing_their_ranges(gnos in proptest::collection::btree_set(1u64..60, 0..30)) {
            let mut s = GtidSet::default();
            for g in &gnos {
                s.add(U1, *g);
            }
            let printed = s.to_string();
            prop_assert_eq!(GtidSet::parse(&printed).unwrap(), s.clone());
            // Every number is in exactly one printed range, and ranges never touch.
            let ranges = &s.0.get(U1).cloned().unwrap_or_default();
            let covered: std::collections::BTreeSet<u64> = ranges.iter().flat_map(|&(a, b)| a..=b).collect();
            prop_assert_eq!(covered, gnos);
            prop_assert!(ranges.windows(2).all(|w| w[0].1 + 1 < w[1].0));
        }
    }
}
