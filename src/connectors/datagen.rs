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

use ferry_operators::change::{Change, Op, Position, Row};
use ferry_operators::schema::{Column, ColumnType, TableId, TableName, TableSchema};
use ferry_operators::value::{Date, DateTime, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

// ---------------------------------------------------------------------------------------------
// Table kinds and schemas
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Customers,
    Orders,
    OrderItems,
    Events,
    Accounts,
}

const KINDS: [Kind; 5] = [Kind::Customers, Kind::Orders, Kind::OrderItems, Kind::Events, Kind::Accounts];

/// Line numbers per order in `order_items`.
const LINES_PER_ORDER: u64 = 4;

impl Kind {
    fn of(cfg: &DatagenConfig, table: TableId) -> (Kind, u32) {
        let i = table % cfg.tables_per_database;
        (KINDS[i as usize % KINDS.len()], i / KINDS.len() as u32)
    }

    fn base_name(self) -> &'static str {
        match self {
            Kind::Customers => "customers",
            Kind::Orders => "orders",
            Kind::OrderItems => "order_items",
            Kind::Events => "events",
            Kind::Accounts => "accounts",
        }
    }

    /// Columns an ordinary update may change.
    fn updatable(self) -> &'static [u8] {
        match self {
            Kind::Customers => {
                &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]
            }
            Kind::Orders => &[2, 3, 5],
            Kind::OrderItems => &[2, 3, 4],
            Kind::Events => &[0, 1, 2, 3],
            Kind::Accounts => &[1, 2, 3, 4],
        }
    }

    /// Whether some updates change the row key.
    fn key_changes(self) -> bool {
        matches!(self, Kind::Orders | Kind::Accounts)
    }

    fn schema(self, name: TableName) -> TableSchema {
        use ColumnType as T;
        let c = |n: &str, ty: ColumnType, nullable: bool| Column::new(n, ty, nullable);
        let int = |bits: u8| T::Int { bits, unsigned: false };
        let uint = |bits: u8| T::Int { bits, unsigned: true };
        let varchar = |n: u32| T::String { max_chars: Some(n), fixed: false };
        let members = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (columns, primary_key, unique_keys) = match self {
            Kind::Customers => (
                vec![
                    c("id", uint(64), false),
                    c("email", varchar(191), false),
                    c("name", varchar(100), false),
                    c("tiny_i", int(8), true),
                    c("small_i", int(16), true),
                    c("medium_i", int(24), true),
                    c("int_i", int(32), false),
                    c("big_i", int(64), false),
                    c("big_u", uint(64), false),
                    c("score", T::Float, true),
                    c("ratio", T::Double, false),
                    c("balance", T::Decimal { precision: 65, scale: 30 }, false),
                    c("country", T::String { max_chars: Some(2), fixed: true }, false),
                    c("bio", T::String { max_chars: None, fixed: false }, true),
                    c("avatar_hash", T::Bytes { max_len: Some(32), fixed: false }, false),
                    c("photo", T::Bytes { max_len: None, fixed: false }, true),
                    c("birth_date", T::Date, true),
                    c("daily_window", T::Time { fsp: 6 }, false),
                    c("signup_at", T::DateTime { fsp: 6 }, false),
                    c("last_login", T::Timestamp { fsp: 6 }, true),
                    c("prefs", T::Json, true),
                    c("tier", T::Enum { values: members(&TIERS) }, false),
                    c("tags", T::Set { values: members(&TAG_MEMBERS) }, false),
                    c("flags", T::Bit { width: 64 }, false),
                    c("since_year", T::Year, true),
                    c("active", T::Bool, false),
                ],
                vec![0],
                vec![vec![1]],
            ),
            Kind::Orders => (
                vec![
                    c("id", int(64), false),
                    c("customer_id", uint(64), false),
                    c("status", T::Enum { values: members(&STATUSES) }, false),
                    c("amount", T::Decimal { precision: 12, scale: 2 }, false),
                    c("created_at", T::DateTime { fsp: 6 }, false),
                    c("note", varchar(200), true),
                ],
                vec![0],
                vec![],
            ),
            Kind::OrderItems => (
                vec![
                    c("order_id", int(64), false),
                    c("line_no", int(32), false),
                    c("sku", varchar(32), false),
                    c("qty", int(32), false),
                    c("price", T::Decimal { precision: 10, scale: 2 }, false),
                ],
                vec![0, 1],
                vec![],
            ),
            Kind::Events => (
                vec![
                    c("kind", varchar(16), false),
                    c("payload", T::Json, true),
                    c("at", T::Timestamp { fsp: 6 }, false),
                    c("value", T::Double, false),
                ],
                vec![],
                vec![],
            ),
            Kind::Accounts => (
                vec![
                    c("login", varchar(64), false),
                    c("display_name", varchar(100), true),
                    c("balance", T::Decimal { precision: 20, scale: 4 }, false),
                    c("active", T::Bool, false),
                    c("updated_at", T::Timestamp { fsp: 6 }, false),
                ],
                vec![],
                vec![vec![0]],
            ),
        };
        TableSchema { name, columns, primary_key, unique_keys, version: 1 }
    }
}

/// The schemas of a config's tables, in table-id order (database-major). Deterministic.
pub fn catalog(cfg: &DatagenConfig) -> Vec<TableSchema> {
    (0..cfg.table_count())
        .map(|t| {
            let (kind, rep) = Kind::of(cfg, t);
            let db = format!("shop_{}", t / cfg.tables_per_database);
            let table = match rep {
                0 => kind.base_name().to_string(),
                r => format!("{}_{}", kind.base_name(), r + 1),
            };
            kind.schema(TableName::new(db, table))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finalizer: a strong 64-bit mix.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast, and the same on every platform and build (unlike `rand`'s
/// `SmallRng`, whose algorithm may change), so generated data never depends on a dependency.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }
    /// Uniform in `0..n` (`n > 0`), by multiply-high.
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
    /// True with probability `1/n`.
    #[inline]
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    #[inline]
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// A live row, compactly: its image is rendered from these on demand. Column `c` takes its value
/// from seed `b` if bit `c` of `mask` is set (it was changed by the last update), else from `a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LiveRow {
    /// Key number `k` (the shard owns key `shard + k * shards`).
    key: u64,
    a: u64,
    b: u64,
    mask: u64,
}

struct Step {
    op: Op,
    before: Option<LiveRow>,
    after: Option<LiveRow>,
}

/// One deterministic stream of changes: shard `shard` of table `table`.
#[derive(Clone, Debug)]
pub struct ShardGen {
    kind: Kind,
    /// Number of columns.
    width: usize,
    table: TableId,
    shard: u32,
    shards: u32,
    partition: u32,
    seed: u64,
    limit: Option<u64>,
    initial: u64,
    max_transaction: u64,
    /// Cumulative weights: insert, insert+update, total.
    mix: [u64; 3],
    rng: Rng,
    emitted: u64,
    next_key: u64,
    live: Vec<LiveRow>,
    /// Room left at the end of every rendered row (for columns a transform appends).
    spare: usize,
}

impl ShardGen {
    /// The stream of `(table, shard)`. `catalog` must be `catalog(cfg)` and `table` an index in
    /// it; `cfg` should have passed [`DatagenConfig::validate`].
    pub fn new(cfg: &DatagenConfig, catalog: &[TableSchema], table: TableId, shard: u32) -> ShardGen {
        assert_eq!(catalog.len(), cfg.table_count() as usize, "catalog does not belong to this datagen config");
        assert!(shard < cfg.shards_per_table, "shard {shard} out of 0..{}", cfg.shards_per_table);
        let (kind, _) = Kind::of(cfg, table);
        debug_assert!(catalog[table as usize].name.table.starts_with(kind.base_name()));
        let shards = cfg.shards_per_table;
        let seed = mix64(mix64(mix64(cfg.seed ^ 0x6461_7461_6765_6e00) ^ table as u64) ^ shard as u64);
        let share = |n: u64| n / shards as u64 + u64::from((shard as u64) < n % shards as u64);
        let Mix { insert, update, delete } = cfg.mix;
        let (i, u, d) = (insert as u64, update as u64, delete as u64);
        ShardGen {
            kind,
            width: catalog[table as usize].columns.len(),
            table,
            shard,
            shards,
            partition: table * shards + shard,
            seed,
            limit: cfg.stream_limit(table, shard),
            initial: share(cfg.initial_rows),
            max_transaction: cfg.max_transaction.max(1) as u64,
            mix: [i, i + u, (i + u + d).max(1)],
            rng: Rng(seed),
            emitted: 0,
            next_key: 0,
            live: Vec::new(),
            spare: 0,
        }
    }

    /// Leaves room for `n` more values at the end of every row this stream renders (the
    /// columns the table's transform appends), so appending them does not move the row.
    pub fn with_spare_columns(mut self, n: usize) -> Self {
        self.spare = n;
        self
    }

    /// The stream's partition number, `table * shards_per_table + shard` (used in
    /// [`Position::Seq`]).
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The table this stream writes.
    pub fn table(&self) -> TableId {
        self.table
    }

    /// How many changes this stream emits in all; `None` when unbounded.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Changes emitted so far: the source offset to resume from (see [`ShardGen::skip_to`]).
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Whether a bounded stream has emitted all its changes.
    pub fn is_exhausted(&self) -> bool {
        self.limit == Some(self.emitted)
    }

    /// Appends one whole transaction (1..=max_transaction changes, fewer at the end of a bounded
    /// stream) to `out`; returns false (appending nothing) when the stream is exhausted.
    pub fn next_transaction(&mut self, out: &mut Vec<Change>) -> bool {
        let Some(n) = self.begin_transaction() else { return false };
        let commit_micros = self.commit_micros(self.emitted);
        out.reserve(n as usize);
        for _ in 0..n {
            let seq = self.emitted;
            let step = self.step();
            let before = step.before.map(|r| self.render(&r));
            let after = match (&before, step.before, step.after) {
                (Some(image), Some(b), Some(a)) => Some(self.render_update(image, &b, &a)),
                (_, _, a) => a.map(|r| self.render(&r)),
            };
            out.push(Change {
                table: self.table,
                op: step.op,
                before,
                after,
                pos: Position::Seq { partition: self.partition, seq },
                commit_micros,
                schema: None,
            });
        }
        true
    }

    /// Fast-forwards to `offset` (a value [`ShardGen::emitted`] returned, i.e. a transaction
    /// boundary), leaving the stream exactly as it was after emitting `offset` changes. Builds
    /// no rows. An offset behind the current one restarts the stream from the beginning.
    ///
    /// # Panics
    /// If `offset` is past the end of a bounded stream or inside a transaction.
    pub fn skip_to(&mut self, offset: u64) {
        if offset < self.emitted {
            self.rng = Rng(self.seed);
            self.emitted = 0;
            self.next_key = 0;
            self.live.clear();
        }
        if let Some(limit) = self.limit {
            assert!(
                offset <= limit,
                "skip_to({offset}) is past the end of partition {} ({limit} changes)",
                self.partition
            );
        }
        while self.emitted < offset {
            let n = self.begin_transaction().expect("bounded stream checked above");
            assert!(
                self.emitted + n <= offset,
                "skip_to({offset}) is not a transaction boundary of partition {}: a transaction spans {}..{}",
                self.partition,
                self.emitted,
                self.emitted + n
            );
            for _ in 0..n {
                self.step();
            }
        }
    }

    /// The current images of the rows this stream has inserted and not deleted (any order).
    pub fn current_rows(&self) -> Vec<Row> {
        self.live.iter().map(|r| self.render(r)).collect()
    }

    /// Draws the size of the next transaction; `None` at the end of a bounded stream.
    fn begin_transaction(&mut self) -> Option<u64> {
        let remaining = match self.limit {
            Some(l) => l - self.emitted,
            None => u64::MAX,
        };
        if remaining == 0 {
            return None;
        }
        Some((1 + self.rng.below(self.max_transaction)).min(remaining))
    }

    fn commit_micros(&self, first_seq: u64) -> i64 {
        COMMIT_EPOCH_MICROS.wrapping_add((first_seq as i64).wrapping_mul(1000)).wrapping_add(self.partition as i64)
    }

    /// Decides the next change and applies it to the live set, without rendering rows.
    fn step(&mut self) -> Step {
        let seq = self.emitted;
        self.emitted += 1;
        let mut op = if seq < self.initial {
            Op::Insert
        } else {
            let r = self.rng.below(self.mix[2]);
            if r < self.mix[0] {
                Op::Insert
            } else if r < self.mix[1] {
                Op::Update
            } else {
                Op::Delete
            }
        };
        if self.live.is_empty() {
            op = Op::Insert;
        }
        match op {
            Op::Insert => {
                let row = if self.kind == Kind::Events && !self.live.is_empty() && self.rng.one_in(32) {
                    self.rng.pick(&self.live)
                } else {
                    let key = self.next_key;
                    self.next_key += 1;
                    LiveRow { key, a: self.rng.next(), b: 0, mask: 0 }
                };
                self.live.push(row);
                Step { op, before: None, after: Some(row) }
            }
            Op::Update => {
                let i = self.rng.below(self.live.len() as u64) as usize;
                let before = self.live[i];
                let mut after = before;
                if self.kind.key_changes() && self.rng.one_in(20) {
                    after.key = self.next_key;
                    self.next_key += 1;
                } else {
                    after.b = self.rng.next();
                    after.mask = self.draw_mask();
                }
                self.live[i] = after;
                Step { op, before: Some(before), after: Some(after) }
            }
            Op::Delete => {
                let i = self.rng.below(self.live.len() as u64) as usize;
                let before = self.live.swap_remove(i);
                Step { op, before: Some(before), after: None }
            }
        }
    }

    /// 1 to 3 updatable columns.
    fn draw_mask(&mut self) -> u64 {
        let cols = self.kind.updatable();
        let x = self.rng.next();
        let n = 1 + (x & 3) % 3;
        (0..n).fold(0, |m, j| {
            let pick = ((x >> (4 + 20 * j)) & 0xF_FFFF) as usize % cols.len();
            m | 1 << cols[pick]
        })
    }

    /// The key number `k` as the id the shard owns.
    #[inline]
    fn owned_id(&self, k: u64) -> u64 {
        (self.shard as u64).wrapping_add(k.wrapping_mul(self.shards as u64))
    }

    /// The full image of a live row.
    fn render(&self, r: &LiveRow) -> Row {
        let mut row = Vec::with_capacity(self.width + self.spare);
        row.extend((0..self.width).map(|c| self.value(r, c)));
        row
    }

    /// The after image of an update, from its before image: only the columns whose seed (or,
    /// after a key change, whose key) differs are generated again; the others are cloned.
    fn render_update(&self, before_image: &[Value], before: &LiveRow, after: &LiveRow) -> Row {
        if before.key != after.key {
            return self.render(after);
        }
        let seed = |r: &LiveRow, c: usize| if r.mask >> c & 1 == 1 { r.b } else { r.a };
        let mut row = Vec::with_capacity(self.width + self.spare);
        row.extend(before_image.iter().enumerate().map(|(c, v)| {
            if seed(before, c) == seed(after, c) {
                v.clone()
            } else {
                self.value(after, c)
            }
        }));
        row
    }

    /// Column `c` of a live row. Key columns derive from the key number; every other column
    /// from its own generator seeded by the row's seed for it (see [`col_rng`]).
    fn value(&self, r: &LiveRow, c: usize) -> Value {
        let g = &mut col_rng(r, c as u32);
        match self.kind {
            Kind::Customers => self.customer_value(r, c, g),
            Kind::Orders => match c {
                0 => Value::Int(self.owned_id(r.key) as i64),
                1 => Value::UInt(g.below(1_000_000)),
                2 => Value::Enum(g.pick(&STATUSES).to_string()),
                3 => Value::Decimal(decimal(g, 10, 2, false)),
                4 => Value::DateTime(datetime(g)),
                _ => nullable(g, 3, |g| Value::Text(sentences(g, 3, ' '))),
            },
            Kind::OrderItems => match c {
                0 => Value::Int(self.owned_id(r.key / LINES_PER_ORDER) as i64),
                1 => Value::Int((r.key % LINES_PER_ORDER + 1) as i64),
                2 => {
                    let mut sku = String::with_capacity(10);
                    sku.push_str("SKU-");
                    push_padded(&mut sku, g.below(1_000_000), 6);
                    Value::Text(sku)
                }
                3 => Value::Int(1 + g.below(100) as i64),
                _ => Value::Decimal(decimal(g, 8, 2, false)),
            },
            Kind::Events => match c {
                0 => Value::Text(g.pick(&EVENT_KINDS).to_string()),
                1 => nullable(g, 8, |g| Value::Json(json_doc(g))),
                2 => Value::Timestamp(timestamp(g)),
                _ => Value::Double(double(g)),
            },
            Kind::Accounts => match c {
                0 => {
                    let mut login = String::with_capacity(24);
                    login.push_str("acct_");
                    push_u64(&mut login, self.owned_id(r.key));
                    Value::Text(login)
                }
                1 => nullable(g, 4, |g| Value::Text(person_name(g))),
                2 => Value::Decimal(decimal(g, 16, 4, true)),
                3 => Value::Bool(g.next() & 1 == 1),
                _ => Value::Timestamp(timestamp(g)),
            },
        }
    }

    fn customer_value(&self, r: &LiveRow, c: usize, g: &mut Rng) -> Value {
        match c {
            0 => Value::UInt(self.owned_id(r.key)),
            1 => {
                let mut email = String::with_capacity(32);
                email.push_str("user");
                push_u64(&mut email, self.owned_id(r.key));
                email.push_str("@example.com");
                Value::Text(email)
            }
            2 => Value::Text(person_name(g)),
            3 => nullable(g, 8, |g| Value::Int(int_bits(g, 8))),
            4 => nullable(g, 8, |g| Value::Int(int_bits(g, 16))),
            5 => nullable(g, 8, |g| Value::Int(int_bits(g, 24))),
            6 => Value::Int(int_bits(g, 32)),
            7 => Value::Int(int_bits(g, 64)),
            8 => Value::UInt(near_u64_max(g)),
            9 => nullable(g, 6, |g| Value::Float((g.below(1 << 24) as i64 - (1 << 23)) as f32 / 64.0)),
            10 => Value::Double(double(g)),
            11 => Value::Decimal(decimal(g, 35, 30, true)),
            12 => Value::Text(g.pick(&COUNTRIES).to_string()),
            13 => nullable(g, 5, |g| Value::Text(sentences(g, 4, '\n'))),
            14 => Value::Bytes(avatar_hash(g)),
            15 => nullable(g, 3, |g| {
                let n = g.below(128) as usize;
                Value::Bytes(random_bytes(g, n))
            }),
            16 => nullable(g, 16, birth_date),
            17 => Value::Time(time_span(g)),
            18 => Value::DateTime(datetime(g)),
            19 => nullable(g, 6, |g| Value::Timestamp(timestamp(g))),
            20 => nullable(g, 5, |g| Value::Json(json_doc(g))),
            21 => Value::Enum(g.pick(&TIERS).to_string()),
            22 => Value::Set(SETS[g.below(16) as usize].to_string()),
            23 => Value::Bit { width: 64, bytes: bits64(g).to_be_bytes().to_vec() },
            24 => nullable(g, 16, |g| Value::Year(if g.one_in(32) { 0 } else { 1901 + g.below(255) as u16 })),
            _ => Value::Bool(g.next() & 1 == 1),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value generators
// ---------------------------------------------------------------------------------------------

/// The generator of column `c` of a row: seeded by the row's seed for that column.
#[inline]
fn col_rng(r: &LiveRow, c: u32) -> Rng {
    let s = if r.mask >> c & 1 == 1 { r.b } else { r.a };
    Rng(mix64(s.wrapping_add((c as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))))
}

/// NULL with probability `1/one_in`, else `f`.
#[inline]
fn nullable(g: &mut Rng, one_in: u64, f: impl FnOnce(&mut Rng) -> Value) -> Value {
    if g.one_in(one_in) {
        Value::Null
    } else {
        f(g)
    }
}

fn push_u64(s: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    s.push_str(std::str::from_utf8(&buf[i..]).expect("ASCII digits"));
}

/// `v` as exactly `width` (<= 20) digits, zero-padded.
fn push_padded(s: &mut String, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    for d in buf[..width].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    s.push_str(std::str::from_utf8(&buf[..width]).expect("ASCII digits"));
}

/// A signed integer of `bits` width, its extremes one time in 16.
fn int_bits(g: &mut Rng, bits: u32) -> i64 {
    let (min, max) = (-(1i128 << (bits - 1)) as i64, ((1i128 << (bits - 1)) - 1) as i64);
    match g.below(32) {
        0 => min,
        1 => max,
        _ => (g.next() as i64) >> (64 - bits),
    }
}

fn near_u64_max(g: &mut Rng) -> u64 {
    match g.below(8) {
        0 => u64::MAX,
        1 => g.next(),
        _ => u64::MAX - g.below(1_000_000),
    }
}

fn double(g: &mut Rng) -> f64 {
    const SPECIAL: [f64; 7] = [f64::MAX, f64::MIN, f64::MIN_POSITIVE, 0.0, 0.1, 1.0 / 3.0, -1e-300];
    if g.one_in(16) {
        g.pick(&SPECIAL)
    } else {
        ((g.next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2e6
    }
}

/// A canonical decimal with 1..=`int_digits` integer digits (all of them one time in four) and
/// exactly `scale` fraction digits; `int_digits + scale <= 65`.
fn decimal(g: &mut Rng, int_digits: u32, scale: u32, signed: bool) -> String {
    let mut buf = [0u8; 67];
    let neg = signed && g.one_in(3);
    let start = usize::from(!neg);
    buf[0] = b'-';
    let len = if g.one_in(4) { int_digits } else { 1 + g.below(int_digits as u64) as u32 } as usize;
    // The first digit is not 0 unless it is the only one.
    buf[1] = b'0' + if len > 1 { 1 + g.below(9) } else { g.below(10) } as u8;
    fill_digits(g, &mut buf[2..1 + len]);
    let mut end = 1 + len;
    if scale > 0 {
        buf[end] = b'.';
        fill_digits(g, &mut buf[end + 1..end + 1 + scale as usize]);
        end += 1 + scale as usize;
    }
    // No "-0.00": canonical decimals have no negative zero.
    let start = if neg && buf[1..end].iter().all(|&b| b == b'0' || b == b'.') { 1 } else { start };
    std::str::from_utf8(&buf[start..end]).expect("ASCII digits").to_owned()
}

/// `"00".."99"`, two bytes each.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Fills `out` with random ASCII digits, two per multiply-high of a random word (9 pairs a word).
fn fill_digits(g: &mut Rng, out: &mut [u8]) {
    let mut chunks = out.chunks_exact_mut(2);
    let (mut word, mut left) = (0u64, 0);
    for pair in &mut chunks {
        if left == 0 {
            word = g.next();
            left = 9;
        }
        left -= 1;
        let p = word as u128 * 100;
        word = p as u64;
        let d = (p >> 64) as usize;
        pair.copy_from_slice(&DIGIT_PAIRS[2 * d..2 * d + 2]);
    }
    if let [last] = chunks.into_remainder() {
        *last = b'0' + g.below(10) as u8;
    }
}

fn random_bytes(g: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let w = g.next().to_le_bytes();
        let k = (n - v.len()).min(8);
        v.extend_from_slice(&w[..k]);
    }
    v
}

/// 16..=32 bytes starting with 0xFE or 0xFF, so never valid UTF-8.
fn avatar_hash(g: &mut Rng) -> Vec<u8> {
    let n = 16 + g.below(17) as usize;
    let mut v = random_bytes(g, n);
    v[0] |= 0xFE;
    v
}

fn bits64(g: &mut Rng) -> u64 {
    match g.below(16) {
        0 => 0,
        1 => u64::MAX,
        _ => g.next(),
    }
}

const DAY_MICROS: u64 = 86_400_000_000;
/// MySQL `TIME` limit: 838:59:59.
const TIME_MAX_MICROS: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000;
/// MySQL `TIMESTAMP` limits: 1970-01-01 00:00:01 and 2038-01-19 03:14:07.999999 UTC.
const TIMESTAMP_MIN_MICROS: i64 = 1_000_000;
const TIMESTAMP_MAX_MICROS: i64 = 2_147_483_647_999_999;

/// A valid date in `years` (no day-number arithmetic).
fn civil_date(g: &mut Rng, years: std::ops::Range<u16>) -> Date {
    const DAYS: [u8; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let year = years.start + g.below((years.end - years.start) as u64) as u16;
    let month = 1 + g.below(12) as u8;
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = DAYS[month as usize - 1] + u8::from(month == 2 && leap);
    Date::new(i32::from(year), month, 1 + g.below(days as u64) as u8)
}

fn birth_date(g: &mut Rng) -> Value {
    Value::Date(match g.below(32) {
        0 | 1 => Date::new(0, 0, 0),
        2 => Date::new(1000, 1, 1),
        3 => Date::new(9999, 12, 31),
        _ => civil_date(g, 1900..2011),
    })
}

fn time_span(g: &mut Rng) -> i64 {
    match g.below(16) {
        0 => -TIME_MAX_MICROS,
        1 => TIME_MAX_MICROS,
        2 => g.below(DAY_MICROS) as i64,
        _ => g.below(2 * TIME_MAX_MICROS as u64 + 1) as i64 - TIME_MAX_MICROS,
    }
}

fn datetime(g: &mut Rng) -> DateTime {
    match g.below(32) {
        0 => DateTime { date: Date::new(1000, 1, 1), micros: 0 },
        1 => DateTime { date: Date::new(9999, 12, 31), micros: DAY_MICROS - 1 },
        _ => DateTime { date: civil_date(g, 2000..2031), micros: g.below(DAY_MICROS) },
    }
}

fn timestamp(g: &mut Rng) -> i64 {
    match g.below(32) {
        0 => TIMESTAMP_MIN_MICROS,
        1 => TIMESTAMP_MAX_MICROS,
        _ => TIMESTAMP_MIN_MICROS + g.below((TIMESTAMP_MAX_MICROS - TIMESTAMP_MIN_MICROS) as u64) as i64,
    }
}

const TIERS: [&str; 3] = ["free", "pro", "enterprise"];
const TAG_MEMBERS: [&str; 4] = ["news", "beta", "vip", "sms"];
/// Every subset of [`TAG_MEMBERS`] as MySQL writes it (declaration order), by bit mask.
const SETS: [&str; 16] = [
    "",
    "news",
    "beta",
    "news,beta",
    "vip",
    "news,vip",
    "beta,vip",
    "news,beta,vip",
    "sms",
    "news,sms",
    "beta,sms",
    "news,beta,sms",
    "vip,sms",
    "news,vip,sms",
    "beta,vip,sms",
    "news,beta,vip,sms",
];
const STATUSES: [&str; 4] = ["new", "paid", "shipped", "cancelled"];
const COUNTRIES: [&str; 12] = ["US", "DE", "FR", "JP", "BR", "IN", "CN", "GB", "NG", "ES", "KR", "MX"];
const EVENT_KINDS: [&str; 8] = ["click", "view", "purchase", "signup", "logout", "error", "🚀launch", "it's"];
const FIRST_NAMES: [&str; 16] = [
    "Ana",
    "Zoë",
    "José",
    "Łukasz",
    "Søren",
    "Renée",
    "李",
    "Анна",
    "O'Brien",
    "D\"Angelo",
    "back\\slash",
    "😀Smiley",
    "Ωmega",
    "Nguyễn",
    "Björk",
    "𝔘nicode",
];
const LAST_NAMES: [&str; 16] = [
    "Smith",
    "Müller",
    "García",
    "O'Neil",
    "Kowalski",
    "“Curly”",
    "line\nbreak",
    "tab\tbed",
    "🐍🐍",
    "NULL",
    "",
    " spaces ",
    "%_wild",
    "\\N",
    "Ōtani",
    "Dupont",
];
const SENTENCES: [&str; 16] = [
    "It's \"quoted\".",
    "C:\\path\\to\\file",
    "emoji 🎉🎉 party",
    "multi\nline\r\ntext",
    "x'; DROP TABLE customers; --",
    "\\N is not NULL",
    "中文字符和日本語",
    "Ünïcödé ñ",
    "plain words here",
    "tab\tseparated",
    "👩‍👩‍👧 family (ZWJ)",
    "",
    "100% _like_ patterns",
    "back\\\\slashes\\",
    "null",
    "ok",
];
/// Valid JSON values embedded in generated documents.
const JSON_VALUES: [&str; 8] = [
    r#""quote \" backslash \\ newline \n 😀""#,
    "[1,2.5,-3,true,false,null]",
    r#"{"nested":{"deep":[{},[]]}}"#,
    r#""é\u00e9 \ud83d\ude00""#,
    r#"{"emoji":"🚀","apostrophe":"it's"}"#,
    "12345678901234567890",
    "null",
    r#"{"a":1,"b":"two","c":[3]}"#,
];
const THEMES: [&str; 4] = ["dark", "light", "system", "high-contrast"];

fn person_name(g: &mut Rng) -> String {
    let (first, last) = (g.pick(&FIRST_NAMES), g.pick(&LAST_NAMES));
    let mut s = String::with_capacity(first.len() + last.len() + 1);
    s.push_str(first);
    s.push(' ');
    s.push_str(last);
    s
}

/// 1..=`max` sentences joined by `sep`.
fn sentences(g: &mut Rng, max: u64, sep: char) -> String {
    let n = 1 + g.below(max);
    let mut s = String::with_capacity(24 * n as usize);
    for i in 0..n {
        if i > 0 {
            s.push(sep);
        }
        s.push_str(g.pick(&SENTENCES));
    }
    s
}

fn json_doc(g: &mut Rng) -> String {
    let mut s = String::with_capacity(96);
    s.push_str(r#"{"theme":""#);
    s.push_str(g.pick(&THEMES));
    s.push_str(r#"","n":"#);
    push_u64(&mut s, g.below(1 << 40));
    s.push_str(r#","v":"#);
    s.push_str(g.pick(&JSON_VALUES));
    s.push('}');
    s
}

// ---------------------------------------------------------------------------------------------
// Expected state and materialization
// ---------------------------------------------------------------------------------------------

/// The canonical line of a row: `[v1,v2,...]` with each value JSON-encoded by
/// [`ferry_operators::json::write_value`]. Rows are compared and sorted by it.
pub fn canonical_line(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * row.len() + 2);
    out.push(b'[');
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        ferry_operators::json::write_value(v, &mut out);
    }
    out.push(b']');
    out
}

/// Sorts rows by their [`canonical_line`].
pub fn sort_canonical(rows: &mut [Row]) {
    rows.sort_by_cached_key(|r| canonical_line(r));
}

/// The final state a bounded config's streams leave: per table (in [`catalog`] order) its rows,
/// sorted by [`canonical_line`]. Keyed tables have one row per key; `events` is a multiset.
///
/// # Panics
/// If `cfg.changes` is `None` (an unbounded run has no final state).
pub fn expected_state(cfg: &DatagenConfig) -> Vec<(TableSchema, Vec<Row>)> {
    assert!(cfg.changes.is_some(), "expected_state needs a bounded config: set `changes`");
    let cat = catalog(cfg);
    (0..cat.len() as TableId)
        .map(|t| {
            let mut rows = Vec::new();
            for s in 0..cfg.shards_per_table {
                let mut g = ShardGen::new(cfg, &cat, t, s);
                g.skip_to(g.limit().expect("bounded"));
                rows.extend(g.current_rows());
            }
            sort_canonical(&mut rows);
            (cat[t as usize].clone(), rows)
        })
        .collect()
}

/// Applies a log of [`Change`]s to in-memory tables, for tests: insert upserts by key, update
/// replaces the row of the before image's key (so a key change moves the row), delete removes
/// it. Tables without a key are multisets of whole rows: an update or delete removes one copy
/// equal to the before image. Works with any schemas, not only datagen's.
#[derive(Clone, Debug)]
pub struct Materializer {
    schemas: Vec<TableSchema>,
    tables: Vec<BTreeMap<Vec<u8>, (Row, usize)>>,
    strict: bool,
}

impl Materializer {
    /// Empty tables for `schemas`, indexed by [`TableId`]. Lenient: see [`Materializer::strict`].
    pub fn new(schemas: &[TableSchema]) -> Self {
        Materializer { schemas: schemas.to_vec(), tables: vec![BTreeMap::new(); schemas.len()], strict: false }
    }

    /// In strict mode [`Materializer::apply`] fails on an insert of an existing key, and on an
    /// update or delete whose before image is not the current row. Lenient mode (the default)
    /// accepts replays: inserts overwrite, updates of missing rows insert, deletes of missing
    /// rows do nothing.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    fn key_of(schema: &TableSchema, row: &[Value]) -> Vec<u8> {
        let key = schema.row_key();
        if key.is_empty() {
            return canonical_line(row);
        }
        let mut out = Vec::with_capacity(16 * key.len());
        for (n, &i) in key.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            ferry_operators::json::write_value(&row[i], &mut out);
        }
        out
    }

    /// Applies one change; the error says what did not match (strict mode).
    pub fn apply(&mut self, change: &Change) -> Result<(), String> {
        let t = change.table as usize;
        let schema = self.schemas.get(t).ok_or_else(|| format!("change for unknown table id {t}"))?;
        let table = &mut self.tables[t];
        let keyed = schema.has_key();
        let strict = self.strict;
        let width = schema.columns.len();
        let image = |r: &Option<Row>, what: &str| -> Result<Row, String> {
            let r =
                r.as_ref().ok_or_else(|| format!("{} on {} without {what} image", change.op.as_str(), schema.name))?;
            if r.len() != width {
                return Err(format!(
                    "{} image on {} has {} values, the table {width} columns",
                    what,
                    schema.name,
                    r.len()
                ));
            }
            Ok(r.clone())
        };
        // Removes the row the before image names; Ok(false) if it was not there (lenient).
        let remove = |table: &mut BTreeMap<Vec<u8>, (Row, usize)>, before: &Row| -> Result<bool, String> {
            let k = Self::key_of(schema, before);
            match table.get_mut(&k) {
                Some((cur, n)) if !strict || cur == before => {
                    *n -= 1;
                    if *n == 0 || keyed {
                        table.remove(&k);
                    }
                    Ok(true)
                }
                Some((cur, _)) => Err(format!(
                    "{} at {}: before image {} differs from the current row {}",
                    change.op.as_str(),
                    change.pos,
                    String::from_utf8_lossy(&canonical_line(before)),
                    String::from_utf8_lossy(&canonical_line(cur))
                )),
                None if strict => Err(format!(
                    "{} at {}: no row {} in {}",
                    change.op.as_str(),
                    change.pos,
                    String::from_utf8_lossy(&canonical_line(before)),
                    schema.name
                )),
                None => Ok(false),
            }
        };
        let insert = |table: &mut BTreeMap<Vec<u8>, (Row, usize)>, after: Row| -> Result<(), String> {
            let k = Self::key_of(schema, &after);
            if keyed {
                if let Some(old) = table.insert(k, (after, 1)) {
                    if strict {
                        return Err(format!(
                            "{} at {}: key already holds {}",
                            change.op.as_str(),
                            change.pos,
                            String::from_utf8_lossy(&canonical_line(&old.0))
                        ));
                    }
                }
            } else {
                table.entry(k).or_insert((after, 0)).1 += 1;
            }
            Ok(())
        };
        match change.op {
            Op::Insert => insert(table, image(&change.after, "after")?),
            Op::Update => {
                let after = image(&change.after, "after")?;
                match &change.before {
                    Some(_) => {
                        let before = image(&change.before, "before")?;
                        remove(table, &before)?;
                    }
                    None if strict => return Err(format!("update at {} without before image", change.pos)),
                    None if keyed => {
                        table.remove(&Self::key_of(schema, &after));
                    }
                    None => {}
                }
                insert(table, after)
            }
            Op::Delete => remove(table, &image(&change.before, "before")?).map(|_| ()),
        }
    }

    /// Applies every change, stopping at the first error.
    pub fn apply_all<'a>(&mut self, changes: impl IntoIterator<Item = &'a Change>) -> Result<(), String> {
        changes.into_iter().try_for_each(|c| self.apply(c))
    }

    /// The rows of one table, sorted by [`canonical_line`] (multiset copies repeated).
    pub fn rows(&self, table: TableId) -> Vec<Row> {
        // BTreeMap order of keyless tables is already canonical; keyed ones need a sort.
        let mut rows: Vec<Row> =
            self.tables[table as usize].values().flat_map(|(r, n)| std::iter::repeat_n(r, *n).cloned()).collect();
        if self.schemas[table as usize].has_key() {
            sort_canonical(&mut rows);
        }
        rows
    }

    /// Every table's schema and sorted rows, in table-id order (the shape of [`expected_state`]).
    pub fn into_state(self) -> Vec<(TableSchema, Vec<Row>)> {
        let rows: Vec<Vec<Row>> = (0..self.schemas.len() as TableId).map(|t| self.rows(t)).collect();
        self.schemas.into_iter().zip(rows).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_operators::value::{canonical_decimal, days_from_civil};
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
