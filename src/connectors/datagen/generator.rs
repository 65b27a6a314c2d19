//! The generator itself: table kinds and their schemas, the per-partition streams
//! ([`ShardGen`]) and the values they draw. See the module doc of `connectors::datagen`.

use super::*;
use ferry_operators::change::{Op, Position, Row};
use ferry_operators::schema::{Column, ColumnType, TableId, TableName, TableSchema};
use ferry_operators::value::{Date, DateTime, Value};

// ---------------------------------------------------------------------------------------------
// Table kinds and schemas
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Customers,
    Orders,
    OrderItems,
    Events,
    Accounts,
}

pub(crate) const KINDS: [Kind; 5] = [Kind::Customers, Kind::Orders, Kind::OrderItems, Kind::Events, Kind::Accounts];

/// Line numbers per order in `order_items`.
pub(crate) const LINES_PER_ORDER: u64 = 4;

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

pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finalizer: a strong 64-bit mix.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast, and the same on every platform and build (unlike `rand`'s
/// `SmallRng`, whose algorithm may change), so generated data never depends on a dependency.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

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
pub(crate) struct LiveRow {
    /// Key number `k` (the shard owns key `shard + k * shards`).
    key: u64,
    a: u64,
    b: u64,
    mask: u64,
}

pub(crate) struct Step {
    op: Op,
    before: Option<LiveRow>,
    after: Option<LiveRow>,
}

/// One deterministic stream of changes: shard `shard` of table `table`.
#[derive(Clone, Debug)]
pub struct ShardGen {
    pub(crate) kind: Kind,
    /// Number of columns.
    pub(crate) width: usize,
    pub(crate) table: TableId,
    pub(crate) shard: u32,
    pub(crate) shards: u32,
    pub(crate) partition: u32,
    pub(crate) seed: u64,
    pub(crate) limit: Option<u64>,
    pub(crate) initial: u64,
    pub(crate) max_transaction: u64,
    /// Cumulative weights: insert, insert+update, total.
    pub(crate) mix: [u64; 3],
    pub(crate) rng: Rng,
    pub(crate) emitted: u64,
    pub(crate) next_key: u64,
    pub(crate) live: Vec<LiveRow>,
    /// Room left at the end of every rendered row (for columns a transform appends).
    pub(crate) spare: usize,
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
pub(crate) fn col_rng(r: &LiveRow, c: u32) -> Rng {
    let s = if r.mask >> c & 1 == 1 { r.b } else { r.a };
    Rng(mix64(s.wrapping_add((c as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))))
}

/// NULL with probability `1/one_in`, else `f`.
#[inline]
pub(crate) fn nullable(g: &mut Rng, one_in: u64, f: impl FnOnce(&mut Rng) -> Value) -> Value {
    if g.one_in(one_in) {
        Value::Null
    } else {
        f(g)
    }
}

pub(crate) fn push_u64(s: &mut String, mut v: u64) {
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
pub(crate) fn push_padded(s: &mut String, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    for d in buf[..width].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    s.push_str(std::str::from_utf8(&buf[..width]).expect("ASCII digits"));
}

/// A signed integer of `bits` width, its extremes one time in 16.
pub(crate) fn int_bits(g: &mut Rng, bits: u32) -> i64 {
    let (min, max) = (-(1i128 << (bits - 1)) as i64, ((1i128 << (bits - 1)) - 1) as i64);
    match g.below(32) {
        0 => min,
        1 => max,
        _ => (g.next() as i64) >> (64 - bits),
    }
}

pub(crate) fn near_u64_max(g: &mut Rng) -> u64 {
    match g.below(8) {
        0 => u64::MAX,
        1 => g.next(),
        _ => u64::MAX - g.below(1_000_000),
    }
}

pub(crate) fn double(g: &mut Rng) -> f64 {
    const SPECIAL: [f64; 7] = [f64::MAX, f64::MIN, f64::MIN_POSITIVE, 0.0, 0.1, 1.0 / 3.0, -1e-300];
    if g.one_in(16) {
        g.pick(&SPECIAL)
    } else {
        ((g.next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2e6
    }
}

/// A canonical decimal with 1..=`int_digits` integer digits (all of them one time in four) and
/// exactly `scale` fraction digits; `int_digits + scale <= 65`.
pub(crate) fn decimal(g: &mut Rng, int_digits: u32, scale: u32, signed: bool) -> String {
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
pub(crate) const DIGIT_PAIRS: [u8; 200] = {
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
pub(crate) fn fill_digits(g: &mut Rng, out: &mut [u8]) {
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

pub(crate) fn random_bytes(g: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let w = g.next().to_le_bytes();
        let k = (n - v.len()).min(8);
        v.extend_from_slice(&w[..k]);
    }
    v
}

/// 16..=32 bytes starting with 0xFE or 0xFF, so never valid UTF-8.
pub(crate) fn avatar_hash(g: &mut Rng) -> Vec<u8> {
    let n = 16 + g.below(17) as usize;
    let mut v = random_bytes(g, n);
    v[0] |= 0xFE;
    v
}

pub(crate) fn bits64(g: &mut Rng) -> u64 {
    match g.below(16) {
        0 => 0,
        1 => u64::MAX,
        _ => g.next(),
    }
}

pub(crate) const DAY_MICROS: u64 = 86_400_000_000;
/// MySQL `TIME` limit: 838:59:59.
pub(crate) const TIME_MAX_MICROS: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000;
/// MySQL `TIMESTAMP` limits: 1970-01-01 00:00:01 and 2038-01-19 03:14:07.999999 UTC.
pub(crate) const TIMESTAMP_MIN_MICROS: i64 = 1_000_000;
pub(crate) const TIMESTAMP_MAX_MICROS: i64 = 2_147_483_647_999_999;

/// A valid date in `years` (no day-number arithmetic).
pub(crate) fn civil_date(g: &mut Rng, years: std::ops::Range<u16>) -> Date {
    const DAYS: [u8; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let year = years.start + g.below((years.end - years.start) as u64) as u16;
    let month = 1 + g.below(12) as u8;
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = DAYS[month as usize - 1] + u8::from(month == 2 && leap);
    Date::new(i32::from(year), month, 1 + g.below(days as u64) as u8)
}

pub(crate) fn birth_date(g: &mut Rng) -> Value {
    Value::Date(match g.below(32) {
        0 | 1 => Date::new(0, 0, 0),
        2 => Date::new(1000, 1, 1),
        3 => Date::new(9999, 12, 31),
        _ => civil_date(g, 1900..2011),
    })
}

pub(crate) fn time_span(g: &mut Rng) -> i64 {
    match g.below(16) {
        0 => -TIME_MAX_MICROS,
        1 => TIME_MAX_MICROS,
        2 => g.below(DAY_MICROS) as i64,
        _ => g.below(2 * TIME_MAX_MICROS as u64 + 1) as i64 - TIME_MAX_MICROS,
    }
}

pub(crate) fn datetime(g: &mut Rng) -> DateTime {
    match g.below(32) {
        0 => DateTime { date: Date::new(1000, 1, 1), micros: 0 },
        1 => DateTime { date: Date::new(9999, 12, 31), micros: DAY_MICROS - 1 },
        _ => DateTime { date: civil_date(g, 2000..2031), micros: g.below(DAY_MICROS) },
    }
}

pub(crate) fn timestamp(g: &mut Rng) -> i64 {
    match g.below(32) {
        0 => TIMESTAMP_MIN_MICROS,
        1 => TIMESTAMP_MAX_MICROS,
        _ => TIMESTAMP_MIN_MICROS + g.below((TIMESTAMP_MAX_MICROS - TIMESTAMP_MIN_MICROS) as u64) as i64,
    }
}

pub(crate) const TIERS: [&str; 3] = ["free", "pro", "enterprise"];
pub(crate) const TAG_MEMBERS: [&str; 4] = ["news", "beta", "vip", "sms"];
/// Every subset of [`TAG_MEMBERS`] as MySQL writes it (declaration order), by bit mask.
pub(crate) const SETS: [&str; 16] = [
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
pub(crate) const STATUSES: [&str; 4] = ["new", "paid", "shipped", "cancelled"];
pub(crate) const COUNTRIES: [&str; 12] = ["US", "DE", "FR", "JP", "BR", "IN", "CN", "GB", "NG", "ES", "KR", "MX"];
pub(crate) const EVENT_KINDS: [&str; 8] =
    ["click", "view", "purchase", "signup", "logout", "error", "🚀launch", "it's"];
pub(crate) const FIRST_NAMES: [&str; 16] = [
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
pub(crate) const LAST_NAMES: [&str; 16] = [
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
pub(crate) const SENTENCES: [&str; 16] = [
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
pub(crate) const JSON_VALUES: [&str; 8] = [
    r#""quote \" backslash \\ newline \n 😀""#,
    "[1,2.5,-3,true,false,null]",
    r#"{"nested":{"deep":[{},[]]}}"#,
    r#""é\u00e9 \ud83d\ude00""#,
    r#"{"emoji":"🚀","apostrophe":"it's"}"#,
    "12345678901234567890",
    "null",
    r#"{"a":1,"b":"two","c":[3]}"#,
];
pub(crate) const THEMES: [&str; 4] = ["dark", "light", "system", "high-contrast"];

pub(crate) fn person_name(g: &mut Rng) -> String {
    let (first, last) = (g.pick(&FIRST_NAMES), g.pick(&LAST_NAMES));
    let mut s = String::with_capacity(first.len() + last.len() + 1);
    s.push_str(first);
    s.push(' ');
    s.push_str(last);
    s
}

/// 1..=`max` sentences joined by `sep`.
pub(crate) fn sentences(g: &mut Rng, max: u64, sep: char) -> String {
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

pub(crate) fn json_doc(g: &mut Rng) -> String {
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
