//! # `datagen`: the built-in deterministic data generator
//!
//! A source that needs no database: it invents a shop's tables and a stream of inserts, updates
//! and deletes on them. The demo plan, the crash/restart tests and the benchmarks use it. Its
//! output is a pure function of its [`DatagenConfig`], so a test can compute the final state the
//! target must reach ([`expected_state`]) without running the engine.
//!
//! ## Tables
//!
//! `databases` databases named `shop_0`, `shop_1`, ...; each holds `tables_per_database` tables
//! whose kinds cycle through the list below by index within the database. A kind that repeats
//! gets a number: `customers`, `orders`, `order_items`, `events`, `accounts`, `customers_2`,
//! `orders_2`, ... Table ids ([`TableId`]) are indexes in [`catalog`]: database-major.
//!
//! | kind | key | columns |
//! |---|---|---|
//! | `customers` | PK `id BIGINT UNSIGNED`; UNIQUE `email` | every value kind: `TINYINT`, `SMALLINT`, `MEDIUMINT`, `INT`, `BIGINT` (extremes included), `BIGINT UNSIGNED` near `u64::MAX`, `FLOAT`, `DOUBLE`, `DECIMAL(65,30)` (full width), `VARCHAR` with emoji, quotes, backslashes and newlines, `CHAR(2)`, `TEXT`, `VARBINARY` (never valid UTF-8), `BLOB`, `DATE` (zero date `0000-00-00` sometimes), `TIME(6)` (`-838:59:59` and `838:59:59` sometimes), `DATETIME(6)`, `TIMESTAMP(6)`, `JSON`, `ENUM`, `SET`, `BIT(64)`, `YEAR`, `BOOLEAN`; nullable columns are NULL sometimes |
//! | `orders` | PK `id BIGINT` | `customer_id BIGINT UNSIGNED`, `status ENUM('new','paid','shipped','cancelled')`, `amount DECIMAL(12,2)`, `created_at DATETIME(6)`, `note VARCHAR(200) NULL`; ~5% of updates change the primary key |
//! | `order_items` | PK `(order_id BIGINT, line_no INT)` | `sku VARCHAR(32)`, `qty INT`, `price DECIMAL(10,2)` |
//! | `events` | none (no PK, no unique key) | `kind VARCHAR(16)`, `payload JSON NULL`, `at TIMESTAMP(6)`, `value DOUBLE`; ~3% of inserts duplicate an existing row exactly, so the table is a multiset |
//! | `accounts` | UNIQUE `login` (NOT NULL), no PK | `display_name VARCHAR(100) NULL`, `balance DECIMAL(20,4)`, `active BOOLEAN`, `updated_at TIMESTAMP(6)`; ~5% of updates change `login` |
//!
//! ## Sharding and determinism
//!
//! Each table has `shards_per_table` independent streams ([`ShardGen`]), numbered by the
//! partition `table * shards_per_table + shard`. The stream count is fixed by the config, never by
//! the worker count, so the output does not depend on how many workers run it. Shard `s` of a
//! keyed table owns the keys `s + k * shards_per_table` (`k = 0, 1, ...`; for `order_items` the
//! `order_id`, with line numbers 1..=4; for `accounts` the number in `login`), and only ever
//! touches rows it inserted, so streams never collide.
//!
//! A bounded run's `changes` is split over the partitions: each gets `changes / partitions`, and
//! the first `changes % partitions` partitions one more. Of its share, a stream first emits its
//! part of `initial_rows` (the table's `initial_rows` split over its shards the same way) as
//! inserts, then draws each change from the insert/update/delete `mix`; an update or delete drawn
//! while the stream has no live row becomes an insert. Changes come in transactions of
//! `1..=max_transaction` changes (uniform; the last one of a bounded stream may be cut short).
//!
//! A stream is seeded from `(seed, table, shard)` and is a pure function of them and the config:
//! its n-th change is always the same. Change `n` carries `Position::Seq { partition, seq: n }`
//! and every change of a transaction carries the commit time
//! `2026-01-01T00:00:00Z + first_seq * 1 ms + partition µs`. A stream is resumed with
//! [`ShardGen::skip_to`] from the `seq` after the last change it had delivered; skipping does not
//! build rows (a live row is kept as a few seeds and rendered only when emitted), so it runs far
//! faster than generation.
//!
//! ## Expected state
//!
//! [`expected_state`] runs every stream of a bounded config to its end and renders the live rows:
//! per table, one row per key (keyed tables) or the multiset of rows (`events`), sorted by their
//! canonical line ([`canonical_line`]: the JSON encoding of each value, as the `files` sink writes
//! it). The same result comes from feeding every change to a [`Materializer`], which is generic
//! (any schemas, any changes) so tests can materialize a sink's output and compare.

mod generator;
mod oracle;
mod source;

pub use generator::{catalog, ShardGen};
pub use oracle::{canonical_line, expected_state, sort_canonical, Materializer};

use crate::connector::{PreparedSource, SourceConnector, SourceCtx, SourcePrepare};
use crate::plan::{DiscoverError, Section, SourceCatalog, SourceConfig, Wanted};
use crate::runtime::TaskError;
use ferry_operators::{Change, SchemaEvent, TableId};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::Arc;
use timely::dataflow::{Scope, StreamVec};

/// Most databases a config may ask for.
pub const MAX_DATABASES: u32 = 100;
/// Most tables per database a config may ask for.
pub const MAX_TABLES_PER_DATABASE: u32 = 100;
/// Most shards (streams) per table a config may ask for.
pub const MAX_SHARDS_PER_TABLE: u32 = 1024;
/// Largest `max_transaction` a config may ask for.
pub const MAX_TRANSACTION: u32 = 100_000;

/// `2026-01-01T00:00:00Z` in microseconds since the Unix epoch: the commit time of change 0.
pub const COMMIT_EPOCH_MICROS: i64 = 1_767_225_600_000_000;

/// The `source:` section of a plan whose source is `datagen`. Every field has a default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatagenConfig {
    /// Seed of every stream. Default 42.
    pub seed: u64,
    /// Number of databases, named `shop_0`, `shop_1`, ... (1..=100). Default 2.
    pub databases: u32,
    /// Tables per database; their kinds cycle through `customers`, `orders`, `order_items`,
    /// `events`, `accounts` (1..=100). Default 4.
    pub tables_per_database: u32,
    /// Total changes across all tables for a bounded run; `None` (the default) runs forever.
    pub changes: Option<u64>,
    /// Target changes per second for the whole source; `None` (the default) is as fast as
    /// possible. The engine does the pacing; the generator only stores it.
    pub rate: Option<u64>,
    /// Independent streams per table (1..=1024). Fixed by the config so the output does not
    /// depend on the worker count. Default 4.
    pub shards_per_table: u32,
    /// Relative weights of inserts, updates and deletes. Default 60/30/10.
    pub mix: Mix,
    /// Each transaction has 1..=`max_transaction` changes, uniformly (1..=100000). Default 5.
    pub max_transaction: u32,
    /// Inserts each table gets first, before the mix starts; counted in `changes`. Default 0.
    pub initial_rows: u64,
}

impl Default for DatagenConfig {
    fn default() -> Self {
        DatagenConfig {
            seed: 42,
            databases: 2,
            tables_per_database: 4,
            changes: None,
            rate: None,
            shards_per_table: 4,
            mix: Mix::default(),
            max_transaction: 5,
            initial_rows: 0,
        }
    }
}

/// Relative weights of the operations a stream draws once its initial rows are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    /// Weight of inserts. Default 60.
    pub insert: u32,
    /// Weight of updates. Default 30.
    pub update: u32,
    /// Weight of deletes. Default 10.
    pub delete: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { insert: 60, update: 30, delete: 10 }
    }
}

impl DatagenConfig {
    /// Checks the ranges; the error says what to change.
    pub fn validate(&self) -> Result<(), String> {
        let range = |name: &str, v: u32, max: u32| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be 1..={max}, got {v}"))
            }
        };
        range("databases", self.databases, MAX_DATABASES)?;
        range("tables_per_database", self.tables_per_database, MAX_TABLES_PER_DATABASE)?;
        range("shards_per_table", self.shards_per_table, MAX_SHARDS_PER_TABLE)?;
        range("max_transaction", self.max_transaction, MAX_TRANSACTION)?;
        let Mix { insert, update, delete } = self.mix;
        if insert == 0 && update == 0 && delete == 0 {
            return Err("mix weights are all 0: give insert a positive weight".into());
        }
        if insert == 0 && self.initial_rows == 0 {
            return Err("mix.insert is 0 and initial_rows is 0, so no row would ever exist: give insert a \
                        positive weight or set initial_rows"
                .into());
        }
        if self.rate == Some(0) {
            return Err("rate must be positive: remove it to generate as fast as possible".into());
        }
        Ok(())
    }

    /// Number of tables: `databases * tables_per_database`.
    pub fn table_count(&self) -> u32 {
        self.databases * self.tables_per_database
    }

    /// Number of streams (partitions) over all tables.
    pub fn partition_count(&self) -> u32 {
        self.table_count() * self.shards_per_table
    }

    /// How many changes the stream of `(table, shard)` emits; `None` for an unbounded run.
    pub fn stream_limit(&self, table: TableId, shard: u32) -> Option<u64> {
        let total = self.changes?;
        let parts = self.partition_count() as u64;
        let p = (table * self.shards_per_table + shard) as u64;
        Some(total / parts + u64::from(p < total % parts))
    }
}

/// The `datagen` source connector.
#[derive(Debug)]
pub struct Datagen;

impl SourceConfig for DatagenConfig {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn discover(&self, _wanted: Wanted<'_>) -> Result<SourceCatalog, DiscoverError> {
        Ok(SourceCatalog { catalog: ferry_operators::Catalog { tables: catalog(self) }, ..Default::default() })
    }
}

impl SourceConnector for Datagen {
    fn types(&self) -> &'static [&'static str] {
        &["datagen"]
    }

    fn parse(&self, _kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn SourceConfig>> {
        let c = at.parse_checked(section, DatagenConfig::validate)?;
        Some(Arc::new(c))
    }

    fn prepare(&self, cx: &SourcePrepare<'_>) -> Result<Arc<dyn PreparedSource>, TaskError> {
        let cfg = cx.plan.plan.source.config_as::<DatagenConfig>().expect("a datagen source's config");
        Ok(Arc::new(Prepared(cfg.clone())))
    }
}

/// A datagen source ready to build.
struct Prepared(DatagenConfig);

impl PreparedSource for Prepared {
    fn build<'s>(
        &self,
        scope: Scope<'s, u64>,
        cx: &SourceCtx,
    ) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
        (source::datagen(scope, cx, self.0.clone()), timely::dataflow::operators::generic::operator::empty(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::generator::*;
    use super::*;
    use ferry_operators::change::{Op, Position, Row};
    use ferry_operators::schema::{Column, ColumnType};
    use ferry_operators::value::{canonical_decimal, days_from_civil};
    use ferry_operators::value::{Date, Value};
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn cfg(changes: u64) -> DatagenConfig {
        DatagenConfig { changes: Some(changes), tables_per_database: 5, ..DatagenConfig::default() }
    }

    /// Every change of a config, stream by stream.
    fn all_changes(cfg: &DatagenConfig) -> Vec<Change> {
        let cat = catalog(cfg);
        let mut out = Vec::new();
        for t in 0..cfg.table_count() {
            for s in 0..cfg.shards_per_table {
                let mut g = ShardGen::new(cfg, &cat, t, s);
                while g.next_transaction(&mut out) {}
            }
        }
        out
    }

    fn transactions(g: &mut ShardGen, n: usize) -> Vec<Vec<Change>> {
        (0..n)
            .map_while(|_| {
                let mut t = Vec::new();
                g.next_transaction(&mut t).then_some(t)
            })
            .collect()
    }

    #[test]
    fn constants_match_the_calendar() {
        assert_eq!(COMMIT_EPOCH_MICROS, days_from_civil(2026, 1, 1) * 86_400_000_000);
        for (i, s) in SETS.iter().enumerate() {
            let want: Vec<_> = (0..4).filter(|b| i >> b & 1 == 1).map(|b| TAG_MEMBERS[b]).collect();
            assert_eq!(*s, want.join(","));
        }
    }

    #[test]
    fn defaults_live_in_one_place_and_unknown_fields_are_rejected() {
        use serde::de::value::{Error, MapDeserializer};
        let de = MapDeserializer::<_, Error>::new(vec![("seed", 7u64)].into_iter());
        let c = DatagenConfig::deserialize(de).unwrap();
        assert_eq!(c, DatagenConfig { seed: 7, ..DatagenConfig::default() });
        assert_eq!(c.mix, Mix { insert: 60, update: 30, delete: 10 });
        let de = MapDeserializer::<_, Error>::new(vec![("sead", 7u64)].into_iter());
        let err = DatagenConfig::deserialize(de).unwrap_err().to_string();
        assert!(err.contains("sead"), "{err}");
        let de = MapDeserializer::<_, Error>::new(vec![("update", 1u32)].into_iter());
        assert_eq!(Mix::deserialize(de).unwrap(), Mix { insert: 60, update: 1, delete: 10 });
    }

    #[test]
    fn validate_says_how_to_fix() {
        assert_eq!(DatagenConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut DatagenConfig)| {
            let mut c = DatagenConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.databases = 0), "databases must be 1..=100, got 0");
        assert_eq!(bad(|c| c.tables_per_database = 101), "tables_per_database must be 1..=100, got 101");
        assert_eq!(bad(|c| c.shards_per_table = 0), "shards_per_table must be 1..=1024, got 0");
        assert_eq!(bad(|c| c.max_transaction = 0), "max_transaction must be 1..=100000, got 0");
        assert_eq!(
            bad(|c| c.mix = Mix { insert: 0, update: 0, delete: 0 }),
            "mix weights are all 0: give insert a positive weight"
        );
        assert!(bad(|c| c.mix.insert = 0).contains("initial_rows"));
        assert!(bad(|c| c.rate = Some(0)).contains("remove it"));
    }

    #[test]
    fn catalog_cycles_kinds_with_numbered_repeats_and_keys() {
        let c = DatagenConfig { databases: 2, tables_per_database: 7, ..DatagenConfig::default() };
        let cat = catalog(&c);
        let names: Vec<String> = cat.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(
            names[..7].iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "shop_0.customers",
                "shop_0.orders",
                "shop_0.order_items",
                "shop_0.events",
                "shop_0.accounts",
                "shop_0.customers_2",
                "shop_0.orders_2"
            ]
        );
        assert_eq!(names[7], "shop_1.customers");
        assert_eq!(cat[0].key_names(), ["id"]);
        assert_eq!(cat[0].unique_keys, [vec![1]]);
        assert_eq!(cat[2].key_names(), ["order_id", "line_no"]);
        assert!(!cat[3].has_key() && cat[3].unique_keys.is_empty());
        assert!(cat[4].primary_key.is_empty());
        assert_eq!(cat[4].key_names(), ["login"]);
        assert_eq!(catalog(&c), cat);
    }

    #[test]
    fn same_config_gives_identical_changes() {
        let c = DatagenConfig { seed: 7, ..cfg(20_000) };
        let a = all_changes(&c);
        assert_eq!(a.len(), 20_000);
        assert_eq!(a, all_changes(&c));
        let other = all_changes(&DatagenConfig { seed: 8, ..c });
        assert_ne!(a, other);
    }

    #[test]
    fn split_of_changes_sums_to_the_total() {
        proptest!(|(changes in 0u64..1_000_000, dbs in 1u32..4, tpd in 1u32..9, shards in 1u32..9)| {
            let c = DatagenConfig { changes: Some(changes), databases: dbs, tables_per_database: tpd,
                                    shards_per_table: shards, ..DatagenConfig::default() };
            let limits: Vec<u64> = (0..c.table_count())
                .flat_map(|t| (0..shards).map(move |s| (t, s)))
                .map(|(t, s)| c.stream_limit(t, s).unwrap())
                .collect();
            prop_assert_eq!(limits.iter().sum::<u64>(), changes);
            prop_assert!(limits.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
        });
        assert_eq!(DatagenConfig::default().stream_limit(0, 0), None);
    }

    #[test]
    fn seqs_transactions_and_commit_times_are_well_formed() {
        let c = DatagenConfig { max_transaction: 7, ..cfg(50_000) };
        let cat = catalog(&c);
        let mut sizes = [0usize; 8];
        for t in 0..c.table_count() {
            for s in 0..c.shards_per_table {
                let mut g = ShardGen::new(&c, &cat, t, s);
                let limit = g.limit().unwrap();
                let mut next_seq = 0;
                let txns = transactions(&mut g, usize::MAX);
                for (i, txn) in txns.iter().enumerate() {
                    assert!((1..=7).contains(&txn.len()));
                    if i + 1 < txns.len() {
                        sizes[txn.len()] += 1;
                    }
                    let commit = COMMIT_EPOCH_MICROS + next_seq as i64 * 1000 + g.partition() as i64;
                    for ch in txn {
                        assert_eq!(ch.pos, Position::Seq { partition: t * c.shards_per_table + s, seq: next_seq });
                        assert_eq!(ch.commit_micros, commit);
                        assert_eq!(ch.table, t);
                        next_seq += 1;
                    }
                }
                assert_eq!(next_seq, limit);
                assert!(g.is_exhausted() && g.emitted() == limit);
                let mut out = Vec::new();
                assert!(!g.next_transaction(&mut out) && out.is_empty());
            }
        }
        assert!(sizes[1..].iter().all(|&n| n > 0), "every size 1..=7 occurs: {sizes:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn skip_to_then_continue_equals_the_straight_run(
            seed in any::<u64>(), table in 0u32..5, shard in 0u32..3, k in 0usize..300,
            bounded in any::<bool>(), initial in 0u64..50,
        ) {
            let c = DatagenConfig { seed, shards_per_table: 3, initial_rows: initial,
                                    changes: bounded.then_some(3 * 5 * 2 * 400), ..cfg(0) };
            let cat = catalog(&c);
            let mut straight = ShardGen::new(&c, &cat, table, shard);
            transactions(&mut straight, k);
            let offset = straight.emitted();
            let mut skipped = ShardGen::new(&c, &cat, table, shard);
            skipped.skip_to(offset);
            prop_assert_eq!(skipped.emitted(), offset);
            prop_assert_eq!(&skipped.live, &straight.live);
            prop_assert_eq!(transactions(&mut skipped, 5), transactions(&mut straight, 5));
            // Skipping backwards restarts the stream.
            let after = straight.emitted();
            let mut again = straight.clone();
            again.skip_to(offset);
            again.skip_to(after);
            prop_assert_eq!(transactions(&mut again, 3), transactions(&mut straight, 3));
        }
    }

    #[test]
    #[should_panic(expected = "not a transaction boundary")]
    fn skip_to_inside_a_transaction_panics() {
        let c = DatagenConfig { max_transaction: 50, ..cfg(100_000) };
        let cat = catalog(&c);
        let mut g = ShardGen::new(&c, &cat, 0, 0);
        let mut out = Vec::new();
        while out.len() < 2 {
            out.clear();
            assert!(g.next_transaction(&mut out));
        }
        ShardGen::new(&c, &cat, 0, 0).skip_to(g.emitted() - 1);
    }

    /// Whether `v` is a value of column `col`.
    fn check_value(col: &Column, v: &Value) -> Result<(), String> {
        let bad = || Err(format!("{} {}: {v:?}", col.name, col.ty.sql_name()));
        let fsp_ok = |micros: i64, fsp: u8| micros.rem_euclid(10i64.pow(6 - fsp as u32)) == 0;
        let ok = match (&col.ty, v) {
            (_, Value::Null) => col.nullable,
            (ColumnType::Bool, Value::Bool(_)) => true,
            (ColumnType::Int { bits, unsigned: false }, Value::Int(i)) => {
                let half = 1i128 << (bits - 1);
                (-half..half).contains(&(*i as i128))
            }
            (ColumnType::Int { bits, unsigned: true }, Value::UInt(u)) => *bits == 64 || *u < 1 << bits,
            (ColumnType::Float, Value::Float(f)) => f.is_finite(),
            (ColumnType::Double, Value::Double(f)) => f.is_finite(),
            (ColumnType::Decimal { precision, scale }, Value::Decimal(s)) => {
                let digits = s.trim_start_matches('-');
                let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
                canonical_decimal(s).as_deref() == Some(s.as_str())
                    && int.len() <= (precision - scale) as usize
                    && frac.len() == *scale as usize
            }
            (ColumnType::String { max_chars, fixed }, Value::Text(s)) => {
                let n = s.chars().count() as u32;
                max_chars.is_none_or(|m| if *fixed { n == m } else { n <= m }) && !s.contains('\0')
            }
            (ColumnType::Bytes { max_len, .. }, Value::Bytes(b)) => max_len.is_none_or(|m| b.len() as u32 <= m),
            (ColumnType::Date, Value::Date(d)) => {
                *d == Date::new(0, 0, 0)
                    || (1000..=9999).contains(&d.year) && d.to_days().map(Date::from_days) == Some(*d)
            }
            (ColumnType::Time { fsp }, Value::Time(t)) => t.abs() <= TIME_MAX_MICROS && fsp_ok(*t, *fsp),
            (ColumnType::DateTime { fsp }, Value::DateTime(dt)) => {
                dt.micros < DAY_MICROS
                    && (1000..=9999).contains(&dt.date.year)
                    && dt.date.to_days().map(Date::from_days) == Some(dt.date)
                    && fsp_ok(dt.micros as i64, *fsp)
            }
            (ColumnType::Timestamp { fsp }, Value::Timestamp(t)) => {
                (TIMESTAMP_MIN_MICROS..=TIMESTAMP_MAX_MICROS).contains(t) && fsp_ok(*t, *fsp)
            }
            (ColumnType::Json, Value::Json(s)) => {
                // write_value embeds valid JSON as is and quotes anything else.
                let mut out = Vec::new();
                ferry_operators::json::write_value(v, &mut out);
                out == s.as_bytes()
            }
            (ColumnType::Enum { values }, Value::Enum(s)) => values.contains(s),
            (ColumnType::Set { values }, Value::Set(s)) => {
                let idx: Option<Vec<usize>> =
                    s.split(',').filter(|m| !m.is_empty()).map(|m| values.iter().position(|v| v == m)).collect();
                idx.is_some_and(|i| i.windows(2).all(|w| w[0] < w[1]))
            }
            (ColumnType::Bit { width }, Value::Bit { width: w, bytes }) => {
                w == width && bytes.len() == (*width as usize).div_ceil(8)
            }
            (ColumnType::Year, Value::Year(y)) => *y == 0 || (1901..=2155).contains(y),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            bad()
        }
    }

    #[test]
    fn generated_values_match_declared_types_and_nullability() {
        let c = DatagenConfig { shards_per_table: 2, ..cfg(200_000) };
        let cat = catalog(&c);
        let mut kinds: HashMap<(TableId, usize), Vec<&'static str>> = HashMap::new();
        let mut non_utf8 = 0;
        for ch in &all_changes(&c) {
            let schema = &cat[ch.table as usize];
            for row in ch.before.iter().chain(&ch.after) {
                assert_eq!(row.len(), schema.columns.len());
                for (i, (col, v)) in schema.columns.iter().zip(row).enumerate() {
                    check_value(col, v).unwrap_or_else(|e| panic!("{}: {e}", schema.name));
                    let seen = kinds.entry((ch.table, i)).or_default();
                    if !seen.contains(&v.kind_name()) {
                        seen.push(v.kind_name());
                    }
                    if let Value::Bytes(b) = v {
                        non_utf8 += usize::from(std::str::from_utf8(b).is_err());
                    }
                }
            }
        }
        assert!(non_utf8 > 0);
        // Every nullable column is NULL sometimes and non-NULL sometimes; customers covers all
        // value kinds.
        let mut all_kinds: Vec<&str> = Vec::new();
        for (t, schema) in cat.iter().enumerate().take(5) {
            for (i, col) in schema.columns.iter().enumerate() {
                let seen = &kinds[&(t as TableId, i)];
                assert_eq!(seen.contains(&"null"), col.nullable, "{}.{}: {seen:?}", schema.name, col.name);
                assert!(seen.iter().any(|k| *k != "null"));
                if t == 0 {
                    all_kinds.extend(seen.iter().filter(|k| **k != "null"));
                }
            }
        }
        all_kinds.sort();
        all_kinds.dedup();
        assert_eq!(all_kinds.len(), 17, "{all_kinds:?}");
        // Edge values occur.
        let rows: Vec<Row> = all_changes(&c).into_iter().filter(|ch| ch.table == 0).filter_map(|ch| ch.after).collect();
        let has = |col: usize, v: Value| rows.iter().any(|r| r[col] == v);
        assert!(has(16, Value::Date(Date::new(0, 0, 0))));
        assert!(has(17, Value::Time(-TIME_MAX_MICROS)) && has(17, Value::Time(TIME_MAX_MICROS)));
        assert!(has(8, Value::UInt(u64::MAX)) && has(7, Value::Int(i64::MIN)));
        assert!(rows.iter().any(|r| matches!(&r[11], Value::Decimal(s) if s.len() == 35 + 1 + 30)));
        assert!(rows.iter().any(|r| matches!(&r[2], Value::Text(s) if s.contains('😀') || s.contains('🐍'))));
        assert!(rows.iter().any(|r| matches!(&r[2], Value::Text(s) if s.contains('\n'))));
        assert!(rows.iter().any(|r| matches!(&r[2], Value::Text(s) if s.contains('\\') && s.contains('\''))
            || matches!(&r[2], Value::Text(s) if s.contains('"'))));
    }

    #[test]
    fn before_images_equal_the_current_row() {
        // A strict materializer checks every before image against the row it holds.
        let c = DatagenConfig { initial_rows: 100, ..cfg(100_000) };
        let mut m = Materializer::new(&catalog(&c)).strict(true);
        let changes = all_changes(&c);
        m.apply_all(&changes).unwrap();
        let mut ops = [0usize; 3];
        for ch in &changes {
            ops[ch.op as usize] += 1;
        }
        assert!(ops.iter().all(|&n| n > 5_000), "{ops:?}");
        // A wrong before image is caught.
        let mut m = Materializer::new(&catalog(&c)).strict(true);
        let mut wrong = changes.clone();
        let i = wrong.iter().position(|ch| ch.op == Op::Update).unwrap();
        wrong[i].before.as_mut().unwrap()[1] = Value::Text("changed".into());
        assert!(m.apply_all(&wrong).is_err());
    }

    #[test]
    fn keyed_rows_never_collide_across_shards_and_keys_change_sometimes() {
        let c = DatagenConfig { shards_per_table: 5, ..cfg(200_000) };
        let cat = catalog(&c);
        let mut owner: HashMap<(TableId, Vec<u8>), u32> = HashMap::new();
        let mut key_changes = [0usize; 5];
        for ch in all_changes(&c) {
            let schema = &cat[ch.table as usize];
            if !schema.has_key() {
                continue;
            }
            let Position::Seq { partition, .. } = ch.pos else { panic!("datagen positions are Seq") };
            let shard = partition % c.shards_per_table;
            for row in ch.before.iter().chain(&ch.after) {
                let k = Materializer::key_of(schema, row);
                assert_eq!(*owner.entry((ch.table, k)).or_insert(partition), partition, "{}", schema.name);
                let id = match &row[0] {
                    Value::UInt(u) => *u,
                    Value::Int(i) => *i as u64,
                    Value::Text(s) => s.trim_start_matches("acct_").parse().unwrap(),
                    v => panic!("{v:?}"),
                };
                assert_eq!(id % c.shards_per_table as u64, shard as u64);
            }
            if ch.op == Op::Update {
                let (b, a) = (ch.before.as_ref().unwrap(), ch.after.as_ref().unwrap());
                if schema.row_key().iter().any(|&i| b[i] != a[i]) {
                    key_changes[(ch.table % 5) as usize] += 1;
                    // Only the key changes.
                    assert!(schema
                        .columns
                        .iter()
                        .enumerate()
                        .all(|(i, _)| schema.row_key().contains(&i) || a[i] == b[i]));
                    let (del, ins) = ch.clone().split_key_change(schema);
                    assert_eq!((del.op, ins.map(|c| c.op)), (Op::Delete, Some(Op::Insert)));
                }
            }
        }
        assert_eq!(key_changes[0] + key_changes[2], 0);
        assert!(key_changes[1] > 100 && key_changes[4] > 100, "{key_changes:?}");
    }

    #[test]
    fn expected_state_equals_materializing_all_changes() {
        for c in [
            cfg(60_000),
            DatagenConfig { seed: 1, initial_rows: 1000, mix: Mix { insert: 1, update: 5, delete: 3 }, ..cfg(30_000) },
            DatagenConfig { databases: 1, tables_per_database: 4, shards_per_table: 1, max_transaction: 1, ..cfg(999) },
        ] {
            let mut m = Materializer::new(&catalog(&c)).strict(true);
            m.apply_all(&all_changes(&c)).unwrap();
            let got = m.into_state();
            let want = expected_state(&c);
            assert_eq!(got.len(), want.len());
            for ((gs, gr), (ws, wr)) in got.iter().zip(&want) {
                assert_eq!(gs, ws);
                assert!(gr == wr, "{}: {} rows materialized, {} expected", gs.name, gr.len(), wr.len());
            }
            // Keyless events really are a multiset (exact duplicates occur).
            if c.seed == 42 {
                let events = &want[3].1;
                assert!(events.windows(2).any(|w| w[0] == w[1]), "no duplicate events");
                assert!(want.iter().all(|(_, rows)| !rows.is_empty()));
            }
        }
    }

    #[test]
    fn lenient_materializer_accepts_replays() {
        let c = cfg(5_000);
        let changes = all_changes(&c);
        let mut once = Materializer::new(&catalog(&c));
        once.apply_all(&changes).unwrap();
        // Replaying a keyed table's log twice converges to the same rows.
        let keyed: Vec<&Change> = changes.iter().filter(|ch| ch.table == 1).collect();
        let mut twice = Materializer::new(&catalog(&c));
        twice.apply_all(keyed.iter().copied()).unwrap();
        twice.apply_all(keyed.iter().copied()).unwrap();
        assert_eq!(twice.rows(1), once.rows(1));
        assert_eq!(once.rows(1), expected_state(&c)[1].1);
    }

    #[test]
    fn generation_rate_smoke_2m_changes() {
        let c = DatagenConfig { changes: Some(2_000_000), ..DatagenConfig::default() };
        let cat = catalog(&c);
        let start = std::time::Instant::now();
        let mut out = Vec::with_capacity(64);
        let (mut n, mut values) = (0u64, 0usize);
        for t in 0..c.table_count() {
            for s in 0..c.shards_per_table {
                let mut g = ShardGen::new(&c, &cat, t, s);
                while g.next_transaction(&mut out) {
                    n += out.len() as u64;
                    values += out.iter().map(|ch| ch.after.as_ref().map_or(0, Vec::len)).sum::<usize>();
                    out.clear();
                }
            }
        }
        let gen = start.elapsed();
        // Resuming skips without building rows.
        let start = std::time::Instant::now();
        let mut live = 0;
        for t in 0..c.table_count() {
            for s in 0..c.shards_per_table {
                let mut g = ShardGen::new(&c, &cat, t, s);
                g.skip_to(g.limit().unwrap());
                live += g.live.len();
            }
        }
        let skip = start.elapsed();
        assert_eq!(n, 2_000_000);
        assert!(values > 0 && live > 0);
        println!(
            "datagen: {n} changes in {:.3}s = {:.2}M changes/s (single thread); skip_to: {:.1}M changes/s",
            gen.as_secs_f64(),
            n as f64 / gen.as_secs_f64() / 1e6,
            n as f64 / skip.as_secs_f64() / 1e6
        );
    }
}
