//! Tests of the expression language: parsing, typing, evaluation, the function library.

use super::eval::Node;
use super::*;
use crate::schema::{Column, TableName};
use crate::value::{canonical_decimal, days_from_civil, Date, DateTime};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn col(name: &str, ty: ColumnType, nullable: bool) -> Column {
    Column::new(name, ty, nullable)
}

fn schema() -> TableSchema {
    TableSchema {
        name: TableName::new("db", "t"),
        columns: vec![
            col("id", ColumnType::Int { bits: 64, unsigned: false }, false),
            col("amount", ColumnType::Decimal { precision: 10, scale: 2 }, true),
            col("status", ColumnType::String { max_chars: Some(20), fixed: false }, true),
            col("created_at", ColumnType::DateTime { fsp: 0 }, true),
            col("flag", ColumnType::Bool, true),
            col("qty", ColumnType::Int { bits: 32, unsigned: true }, true),
            col("big", ColumnType::Int { bits: 64, unsigned: true }, true),
            col("price", ColumnType::Double, true),
            col("d", ColumnType::Date, true),
            col("ts", ColumnType::Timestamp { fsp: 6 }, true),
            col("t", ColumnType::Time { fsp: 0 }, true),
            col("y", ColumnType::Year, true),
            col("kind", ColumnType::Enum { values: vec!["a".into(), "b".into(), "c".into()] }, true),
            col("data", ColumnType::Bytes { max_len: None, fixed: false }, true),
            col("order id", ColumnType::Int { bits: 32, unsigned: false }, true),
            col("doc", ColumnType::Json, true),
            col("name", ColumnType::String { max_chars: None, fixed: false }, true),
            col("note", ColumnType::String { max_chars: None, fixed: false }, true),
            col("and", ColumnType::Int { bits: 32, unsigned: false }, true),
        ],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    }
}

fn micros(y: i64, m: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> i64 {
    days_from_civil(y, m, d) * 86_400_000_000 + ((h * 60 + mi) * 60 + s) * 1_000_000 + us
}

fn date(y: i32, m: u8, d: u8) -> Value {
    Value::Date(Date::new(y, m, d))
}

fn dt(y: i32, m: u8, d: u8, h: u64, mi: u64, s: u64, us: u64) -> Value {
    Value::DateTime(DateTime { date: Date::new(y, m, d), micros: ((h * 60 + mi) * 60 + s) * 1_000_000 + us })
}

fn ts(y: i64, m: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> Value {
    Value::Timestamp(micros(y, m, d, h, mi, s, us))
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn txt(s: &str) -> Value {
    Value::Text(s.into())
}

fn dec(s: &str) -> Value {
    Value::Decimal(s.into())
}

fn dbl(x: f64) -> Value {
    Value::Double(x)
}

fn b(x: bool) -> Value {
    Value::Bool(x)
}

const NULL: Value = Value::Null;

fn row() -> Vec<Value> {
    vec![
        int(7),
        dec("123.45"),
        txt("active"),
        dt(2024, 3, 15, 10, 30, 45, 0),
        b(true),
        Value::UInt(5),
        Value::UInt(u64::MAX),
        dbl(2.5),
        date(2024, 3, 15),
        ts(2024, 3, 15, 10, 30, 45, 123_456),
        Value::Time(37_800_000_000),
        Value::Year(2024),
        Value::Enum("b".into()),
        Value::Bytes(b"\x00ab".to_vec()),
        int(42),
        Value::Json("{\"a\":1}".into()),
        txt("Zoë"),
        NULL,
        int(1),
    ]
}

static POS: Position = Position::Seq { partition: 3, seq: 1042 };
const NOW: i64 = 1_800_000_000_000_000;
const COMMIT: i64 = 1_700_000_000_000_000;

fn ctx() -> EvalContext<'static> {
    EvalContext {
        op: Op::Update,
        commit_micros: COMMIT,
        now_micros: NOW,
        datasource: "mysql1",
        database: "shop",
        schema: None,
        table: "orders",
        position: &POS,
    }
}

fn compile(src: &str) -> Expr {
    Expr::compile(src, &schema()).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn eval_row(src: &str, row: &[Value]) -> Result<Value, EvalError> {
    compile(src).eval(row, &ctx())
}

fn ev(src: &str) -> Value {
    eval_row(src, &row()).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn compile_err(src: &str) -> ExprError {
    match Expr::compile(src, &schema()) {
        Ok(e) => panic!("{src}: expected a compile error, got {e:?}"),
        Err(e) => e,
    }
}

fn check_table(cases: &[(&str, Value)]) {
    let mut failures = Vec::new();
    for (src, want) in cases {
        match eval_row(src, &row()) {
            Ok(got) if &got == want => {}
            other => failures.push(format!("{src}: want {want:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------------

#[test]
fn comparison_operators_on_every_type_class() {
    check_table(&[
        ("id = 7", b(true)),
        ("id != 7", b(false)),
        ("id <> 8", b(true)),
        ("id < 8", b(true)),
        ("id <= 7", b(true)),
        ("id > 7", b(false)),
        ("id >= 7", b(true)),
        ("7 = id", b(true)),
        ("amount > 100", b(true)),
        ("amount = 123.450", b(true)),
        ("amount = '123.45'", b(true)),
        ("id = '7'", b(true)),
        ("id = ' 7 '", b(true)),
        ("big > 9223372036854775807", b(true)),
        ("big = 18446744073709551615", b(true)),
        ("big > 18446744073709551614.999", b(true)),
        ("big > id", b(true)),
        ("-1 < big", b(true)),
        ("price = 2.5", b(true)),
        ("price > 2", b(true)),
        ("price < 2.50001", b(true)),
        ("price = 25e-1", b(true)),
        ("qty = 5.0", b(true)),
        ("status = 'active'", b(true)),
        ("status > 'Active'", b(true)),
        ("status < 'b'", b(true)),
        ("status = 'ACTIVE'", b(false)),
        ("kind = 'b'", b(true)),
        ("kind > 'a'", b(true)),
        ("created_at >= '2024-01-01'", b(true)),
        ("created_at = '2024-03-15 10:30:45'", b(true)),
        ("created_at < '2024-03-15T10:30:46'", b(true)),
        ("d = '2024-03-15'", b(true)),
        ("d = '2024-3-15'", b(true)),
        ("d < created_at", b(true)),
        ("d = '2024-03-15 00:00:00'", b(true)),
        ("d < '2024-03-15 00:00:01'", b(true)),
        ("ts > '2024-03-15 10:30:45'", b(true)),
        ("ts < '2024-03-15T10:30:45.2Z'", b(true)),
        ("ts = '2024-03-15 12:30:45.123456+02:00'", b(true)),
        ("ts > created_at", b(true)),
        ("ts >= d", b(true)),
        ("t = '10:30:00'", b(true)),
        ("t = '10:30'", b(true)),
        ("t > '9:00'", b(true)),
        ("t < '-1:00'", b(false)),
        ("y = 2024", b(true)),
        ("y = '2024'", b(true)),
        ("y > 2000", b(true)),
        ("flag = TRUE", b(true)),
        ("flag = 1", b(true)),
        ("flag = 'true'", b(true)),
        ("flag != FALSE", b(true)),
        ("data = 'ab'", b(false)),
        ("data > ''", b(true)),
        ("`order id` = 42", b(true)),
        ("\"order id\" = 42", b(true)),
        ("`and` = 1", b(true)),
        ("doc = '{\"a\":1}'", b(true)),
        ("name = 'Zoë'", b(true)),
        ("TRUE = 1", b(true)),
        ("'a' < 'b'", b(true)),
        ("DATE '2024-01-01' < TIMESTAMP '2024-01-01 00:00:01'", b(true)),
    ]);
}

#[test]
fn null_in_comparison_is_unknown_and_filters_out() {
    check_table(&[
        ("note = 'x'", NULL),
        ("note != 'x'", NULL),
        ("NULL = NULL", NULL),
        ("id < NULL", NULL),
        ("note IS NULL", b(true)),
        ("note IS NOT NULL", b(false)),
        ("id IS NULL", b(false)),
        ("NULL IS NULL", b(true)),
    ]);
    let e = compile("note = 'x'");
    assert!(!e.eval_bool(&row(), &ctx()).unwrap(), "unknown filters out");
    let e = compile("NOT (note = 'x')");
    assert!(!e.eval_bool(&row(), &ctx()).unwrap(), "NOT unknown is unknown and filters out too");
    assert!(compile("note IS NULL").eval_bool(&row(), &ctx()).unwrap());
}

#[test]
fn and_or_not_follow_three_valued_logic() {
    check_table(&[
        ("TRUE AND TRUE", b(true)),
        ("TRUE AND FALSE", b(false)),
        ("NULL AND FALSE", b(false)),
        ("FALSE AND NULL", b(false)),
        ("NULL AND TRUE", NULL),
        ("TRUE AND NULL", NULL),
        ("NULL OR TRUE", b(true)),
        ("TRUE OR NULL", b(true)),
        ("NULL OR FALSE", NULL),
        ("FALSE OR FALSE", b(false)),
        ("NOT NULL", NULL),
        ("NOT TRUE", b(false)),
        ("NOT 0", b(true)),
        ("note = 'x' OR id = 7", b(true)),
        ("note = 'x' AND id = 8", b(false)),
        ("note = 'x' AND id = 7", NULL),
        ("1 AND 2", b(true)),
    ]);
}

#[test]
fn in_between_and_like() {
    check_table(&[
        ("id IN (1, 7)", b(true)),
        ("id IN (1, 2)", b(false)),
        ("id IN (1, NULL)", NULL),
        ("id IN (7, NULL)", b(true)),
        ("id NOT IN (1, 2)", b(true)),
        ("id NOT IN (1, NULL)", NULL),
        ("id NOT IN (7)", b(false)),
        ("note IN ('a')", NULL),
        ("status IN ('a', 'active')", b(true)),
        ("kind IN ('a', 'b')", b(true)),
        ("id IN ('7', 8)", b(true)),
        ("d IN ('2024-03-14', '2024-03-15')", b(true)),
        ("id IN (id, 1)", b(true)),
        ("id BETWEEN 1 AND 10", b(true)),
        ("id BETWEEN 7 AND 7", b(true)),
        ("id BETWEEN 8 AND 10", b(false)),
        ("id NOT BETWEEN 8 AND 10", b(true)),
        ("id BETWEEN NULL AND 10", NULL),
        ("id BETWEEN 8 AND NULL", b(false)),
        ("id NOT BETWEEN 8 AND NULL", b(true)),
        ("id BETWEEN 1 AND NULL", NULL),
        ("created_at BETWEEN '2024-03-01' AND '2024-03-31'", b(true)),
        ("amount BETWEEN 100 AND 200.5 AND id = 7", b(true)),
        ("status LIKE 'act%'", b(true)),
        ("status LIKE '_ctive'", b(true)),
        ("status LIKE 'ACT%'", b(false)),
        ("status LIKE '%iv%'", b(true)),
        ("status LIKE '%e'", b(true)),
        ("status LIKE 'a%e%'", b(true)),
        ("status LIKE 'active_'", b(false)),
        ("status LIKE '%%%'", b(true)),
        ("status NOT LIKE '%x%'", b(true)),
        ("'50%' LIKE '50\\%'", b(true)),
        ("'500' LIKE '50\\%'", b(false)),
        ("'a_c' LIKE 'a\\_c'", b(true)),
        ("'abc' LIKE 'a\\_c'", b(false)),
        ("'abcabc' LIKE '%abc'", b(true)),
        ("'ab' LIKE '%abc'", b(false)),
        ("name LIKE 'Zo_'", b(true)),
        ("name LIKE '__'", b(false)),
        ("note LIKE 'a%'", NULL),
        ("status LIKE note", NULL),
        ("status LIKE concat('act', '%')", b(true)),
        ("status LIKE status", b(true)),
        ("id LIKE '7'", b(true)),
        ("kind LIKE 'b'", b(true)),
    ]);
}

#[test]
fn arithmetic_operators_and_precedence() {
    check_table(&[
        ("id + 1", int(8)),
        ("id - 10", int(-3)),
        ("id * 3", int(21)),
        ("id / 2", dec("3.5000")),
        ("7 / 2", dec("3.5000")),
        ("1 / 3", dec("0.3333")),
        ("2 / 3", dec("0.6667")),
        ("-2 / 3", dec("-0.6667")),
        ("id % 4", int(3)),
        ("-id % 4", int(-3)),
        ("id % -4", int(3)),
        ("amount + 1", dec("124.45")),
        ("amount - 0.005", dec("123.445")),
        ("amount * 2", dec("246.90")),
        ("amount / 3", dec("41.150000")),
        ("amount % 10", dec("3.45")),
        ("price * 2", dbl(5.0)),
        ("price / 2", dbl(1.25)),
        ("price % 2", dbl(0.5)),
        ("price + amount", dbl(125.95)),
        ("1e0 + 1", dbl(2.0)),
        ("2 * 1.5", dec("3.0")),
        ("1 + '2'", int(3)),
        ("flag + 1", int(2)),
        ("y + 1", int(2025)),
        ("qty + qty", Value::UInt(10)),
        ("qty - 10", int(-5)),
        ("-id", int(-7)),
        ("-amount", dec("-123.45")),
        ("-price", dbl(-2.5)),
        ("- -id", int(7)),
        ("+id", int(7)),
        ("1 + 2 * 3", int(7)),
        ("(1 + 2) * 3", int(9)),
        ("10 - 2 - 3", int(5)),
        ("100 / 10 / 2", dec("5.00000000")),
        ("-2 * -3", int(6)),
        ("2 - -3", int(5)),
        ("2 -3", int(-1)),
        ("NOT 1 = 2", b(true)),
        ("TRUE OR FALSE AND FALSE", b(true)),
        ("(TRUE OR FALSE) AND FALSE", b(false)),
        ("1 + 1 = 2", b(true)),
        ("id + NULL", NULL),
        ("nullif(id, id) + 1", NULL),
    ]);
}

#[test]
fn integer_overflow_promotes_to_decimal() {
    check_table(&[
        ("9223372036854775807 + 1", dec("9223372036854775808")),
        ("-9223372036854775808 - 1", dec("-9223372036854775809")),
        ("-(-9223372036854775808)", dec("9223372036854775808")),
        ("big + 1", dec("18446744073709551616")),
        ("big + big", dec("36893488147419103230")),
        ("big * big", dec("340282366920938463426481119284349108225")),
        ("big * big * big", dec("6277101735386680762814942322444851025767571854389858533375")),
        ("-big", dec("-18446744073709551615")),
        // `-` is signed: BIGINT UNSIGNED - 1 does not fit BIGINT, so it is promoted.
        ("big - 1", dec("18446744073709551614")),
        ("qty * 2", int(10)),
        ("qty * qty", Value::UInt(25)),
        ("id * 1000000000000", int(7_000_000_000_000)),
    ]);
}

#[test]
fn division_and_modulo_by_zero_are_null() {
    check_table(&[
        ("id / 0", NULL),
        ("id % 0", NULL),
        ("amount / 0", NULL),
        ("amount / 0.00", NULL),
        ("amount % 0", NULL),
        ("price / 0", NULL),
        ("price % 0", NULL),
        ("mod(id, 0)", NULL),
    ]);
    assert!(compile("id / 2").nullable(), "division is nullable (by zero)");
}

#[test]
fn decimal_arithmetic_is_exact_with_many_digits() {
    let a = "12345678901234567890123456789012345.123456789012345678901234567890";
    check_table(&[
        (&format!("{a} + 0.000000000000000000000000000001"), dec(&format!("{}1", &a[..a.len() - 1]))),
        (&format!("{a} - {a}"), dec("0.000000000000000000000000000000")),
        ("99999999999999999999999999999999999999 + 1", dec("100000000000000000000000000000000000000")),
        ("0.1 + 0.2 = 0.3", b(true)),
        ("0.1e0 + 0.2e0 = 0.3e0", b(false)),
        (&format!("{a} > 12345678901234567890123456789012345.12345678901234567890123456788"), b(true)),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Literals and compile-time conversion
// ---------------------------------------------------------------------------------------------

#[test]
fn number_literals_are_classified_by_range() {
    let lit = |s: &str| match parse(s).unwrap() {
        Ast::Literal(l, _) => l,
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(lit("42"), Literal::Int(42));
    assert_eq!(lit("007"), Literal::Int(7));
    assert_eq!(lit("-9223372036854775808"), Literal::Int(i64::MIN));
    assert_eq!(lit("9223372036854775808"), Literal::UInt(1 << 63));
    assert_eq!(lit("18446744073709551615"), Literal::UInt(u64::MAX));
    assert_eq!(lit("18446744073709551616"), Literal::Decimal("18446744073709551616".into()));
    assert_eq!(lit("-9223372036854775809"), Literal::Decimal("-9223372036854775809".into()));
    assert_eq!(lit("1.50"), Literal::Decimal("1.50".into()));
    assert_eq!(lit("-0.0"), Literal::Decimal("0.0".into()));
    assert_eq!(lit(".5"), Literal::Decimal("0.5".into()));
    assert_eq!(lit("1e3"), Literal::Double(1000.0));
    assert_eq!(lit("2.5E-1"), Literal::Double(0.25));
    assert_eq!(lit("'it''s'"), Literal::String("it's".into()));
    assert_eq!(lit("''"), Literal::String(String::new()));
    assert_eq!(lit("null"), Literal::Null);
    assert_eq!(lit("True"), Literal::Bool(true));
    assert_eq!(ev("1.50"), dec("1.50"));
    assert_eq!(ev("18446744073709551615"), Value::UInt(u64::MAX));
}

#[test]
fn string_literal_compared_with_date_column_is_converted_at_compile_time() {
    let e = compile("created_at >= '2024-01-01'");
    match &e.root {
        Node::Cmp(_, l, r) => {
            assert!(matches!(**l, Node::Column(3)));
            assert!(matches!(**r, Node::Const(ref v) if *v == dt(2024, 1, 1, 0, 0, 0, 0)), "{r:?}");
        }
        other => panic!("{other:?}"),
    }
    let e = compile("ts < '2024-01-01 10:00:00'");
    assert!(
        matches!(&e.root, Node::Cmp(_, _, r) if matches!(**r, Node::Const(ref v) if *v == ts(2024, 1, 1, 10, 0, 0, 0)))
    );
    let e = compile("id = '5'");
    assert!(matches!(&e.root, Node::Cmp(_, _, r) if matches!(**r, Node::Const(Value::Int(5)))));
    let e = compile("t IN ('10:00', '11:00')");
    assert!(matches!(&e.root, Node::In(_, l, _) if matches!(l[0], Node::Const(Value::Time(36_000_000_000)))));
    // A wrong literal is an error at the literal, not a runtime failure for every row.
    let err = compile_err("created_at >= '2024-13-01'");
    assert_eq!((err.offset, err.len), (14, 12));
}

#[test]
fn constant_subexpressions_are_folded() {
    let e = compile("concat('a', 'b', 1 + 2)");
    assert_eq!(e.constant(), Some(&txt("ab3")));
    assert!(!e.nullable());
    assert!(e.columns().is_empty());
    let e = compile("id > 10 * 10");
    assert!(matches!(&e.root, Node::Cmp(_, _, r) if matches!(**r, Node::Const(Value::Int(100)))));
    let e = compile("created_at > DATE '2024-01-01'");
    assert!(matches!(&e.root, Node::Cmp(_, _, r) if matches!(**r, Node::Const(Value::Date(_)))));
    // Context functions are never folded.
    assert!(compile("now()").constant().is_none());
    assert!(compile("op_type()").constant().is_none());
    let e = compile("status LIKE 'a%'");
    assert!(matches!(&e.root, Node::Like(_, eval::Pattern::Static(_), _)));
}

#[test]
fn columns_are_resolved_by_name_and_listed() {
    let e = compile("ID > 1 AND Amount < 2 AND id < 3 OR `order id` IS NULL");
    assert_eq!(e.columns(), vec![0, 1, 14]);
    assert_eq!(compile("1 + 1").columns(), Vec::<usize>::new());
    assert_eq!(compile("coalesce(note, name, note)").columns(), vec![16, 17]);
}

#[test]
fn static_types_and_nullability() {
    use ColumnType as C;
    let text = C::String { max_chars: None, fixed: false };
    let cases: Vec<(&str, ColumnType, bool)> = vec![
        ("id", C::Int { bits: 64, unsigned: false }, false),
        ("id + 1", C::Int { bits: 64, unsigned: false }, false),
        ("amount + 1", C::Decimal { precision: 65, scale: 2 }, true),
        ("amount * amount", C::Decimal { precision: 65, scale: 4 }, true),
        ("id / 2", C::Decimal { precision: 65, scale: 4 }, true),
        ("qty + qty", C::Int { bits: 64, unsigned: true }, true),
        ("qty - qty", C::Int { bits: 64, unsigned: false }, true),
        ("price * 2", C::Double, true),
        ("concat(status, 'x')", text.clone(), true),
        ("concat('a', 'b')", text.clone(), false),
        ("concat_ws(',', status, note)", text.clone(), false),
        ("upper(status)", C::String { max_chars: Some(20), fixed: false }, true),
        ("substring(status, 2)", C::String { max_chars: Some(20), fixed: false }, true),
        ("upper(id)", text.clone(), false),
        ("length(status)", C::Int { bits: 64, unsigned: false }, true),
        ("id = 1", C::Bool, false),
        ("amount > 1", C::Bool, true),
        ("status IS NULL", C::Bool, false),
        ("id IN (1, NULL)", C::Bool, true),
        ("coalesce(note, 'x')", text.clone(), false),
        ("coalesce(note, name)", text.clone(), true),
        ("coalesce(amount, 0)", C::Decimal { precision: 65, scale: 2 }, false),
        ("coalesce(id, qty)", C::Decimal { precision: 65, scale: 0 }, false),
        ("coalesce(d, created_at)", C::DateTime { fsp: 6 }, true),
        ("ifnull(price, 0)", C::Double, false),
        ("nullif(id, 1)", C::Int { bits: 64, unsigned: false }, true),
        ("if(flag, 1, 2.5)", C::Decimal { precision: 65, scale: 1 }, false),
        ("if(flag, status, note)", text.clone(), true),
        ("if(flag, status, status)", C::String { max_chars: Some(20), fixed: false }, true),
        ("now()", C::Timestamp { fsp: 6 }, false),
        ("event_time()", C::Timestamp { fsp: 6 }, false),
        ("op_type()", text.clone(), false),
        ("source_schema()", text.clone(), true),
        ("source_table()", text.clone(), false),
        ("cast(id AS CHAR(10))", C::String { max_chars: Some(10), fixed: false }, false),
        ("cast(amount AS DECIMAL(12,3))", C::Decimal { precision: 12, scale: 3 }, true),
        ("cast(id AS UNSIGNED)", C::Int { bits: 64, unsigned: true }, false),
        ("cast(status AS BINARY(4))", C::Bytes { max_len: Some(4), fixed: true }, true),
        ("cast(created_at AS TIMESTAMP(3))", C::Timestamp { fsp: 3 }, true),
        ("year(created_at)", C::Int { bits: 32, unsigned: false }, true),
        ("date_format(ts, '%Y')", text.clone(), true),
        ("round(amount, 1)", C::Decimal { precision: 11, scale: 1 }, true),
        ("floor(amount)", C::Decimal { precision: 9, scale: 0 }, true),
        ("abs(qty)", C::Int { bits: 32, unsigned: true }, true),
        ("round(price)", C::Double, true),
        ("mod(id, 2)", C::Int { bits: 64, unsigned: false }, true),
        ("NULL", text.clone(), true),
        ("1.50", C::Decimal { precision: 3, scale: 2 }, false),
    ];
    let mut failures = Vec::new();
    for (src, ty, nullable) in cases {
        let e = compile(src);
        if e.ty() != ty || e.nullable() != nullable {
            failures.push(format!(
                "{src}: want {ty:?} nullable={nullable}, got {:?} nullable={}",
                e.ty(),
                e.nullable()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

#[test]
fn metadata_functions_read_the_context() {
    check_table(&[
        ("now()", Value::Timestamp(NOW)),
        ("event_time()", Value::Timestamp(COMMIT)),
        ("op_type()", txt("update")),
        ("OP_TYPE() = 'update'", b(true)),
        ("source_datasource()", txt("mysql1")),
        ("source_database()", txt("shop")),
        ("source_schema()", NULL),
        ("source_table()", txt("orders")),
        ("source_position()", txt("3:1042")),
        ("concat(source_database(), '.', source_table())", txt("shop.orders")),
        ("event_time() < now()", b(true)),
    ]);
    let c = EvalContext { schema: Some("public"), op: Op::Delete, ..ctx() };
    assert_eq!(compile("source_schema()").eval(&row(), &c).unwrap(), txt("public"));
    assert_eq!(compile("op_type()").eval(&row(), &c).unwrap(), txt("delete"));
}

#[test]
fn string_functions() {
    check_table(&[
        ("concat('a', id, '-', amount)", txt("a7-123.45")),
        ("concat('x', note)", NULL),
        ("concat(d, ' ', t)", txt("2024-03-15 10:30:00")),
        ("concat(flag)", txt("true")),
        ("concat(kind, doc)", txt("b{\"a\":1}")),
        ("concat_ws(',', 'a', note, 'b')", txt("a,b")),
        ("concat_ws(',', note)", txt("")),
        ("concat_ws(note, 'a')", NULL),
        ("concat_ws('', 'a', 'b')", txt("ab")),
        ("upper(status)", txt("ACTIVE")),
        ("UPPER(name)", txt("ZOË")),
        ("lower('ÀB')", txt("àb")),
        ("upper(note)", NULL),
        ("upper(kind)", txt("B")),
        ("upper(data)", Value::Bytes(b"\x00ab".to_vec())),
        ("trim('  a b  ')", txt("a b")),
        ("trim('\ta ')", txt("\ta")),
        ("length('é')", int(2)),
        ("length(name)", int(4)),
        ("char_length('é')", int(1)),
        ("char_length(name)", int(3)),
        ("length(data)", int(3)),
        ("length(id)", int(1)),
        ("length(note)", NULL),
        ("replace('aXbXc', 'X', '-')", txt("a-b-c")),
        ("replace('abc', '', 'x')", txt("abc")),
        ("replace(status, 'ive', '')", txt("act")),
        ("replace(note, 'a', 'b')", NULL),
        ("replace(data, 'a', 'A')", Value::Bytes(b"\x00Ab".to_vec())),
    ]);
}

#[test]
fn substring_follows_mysql_semantics() {
    check_table(&[
        ("substring('Quadratically', 5)", txt("ratically")),
        ("substring('Quadratically', 5, 6)", txt("ratica")),
        ("substring('Sakila', -3)", txt("ila")),
        ("substring('Sakila', -5, 3)", txt("aki")),
        ("substring('Sakila', 0)", txt("")),
        ("substring('Sakila', 10)", txt("")),
        ("substring('Sakila', -10)", txt("")),
        ("substring('Sakila', -6)", txt("Sakila")),
        ("substring('Sakila', 2, 0)", txt("")),
        ("substring('Sakila', 2, -1)", txt("")),
        ("substring('Sakila', 6, 100)", txt("a")),
        ("substring('héllo', 2, 3)", txt("éll")),
        ("substring('😀é€x', -2)", txt("€x")),
        ("substr('abc', 2)", txt("bc")),
        ("substring('abc', '2')", txt("bc")),
        ("substring('abc', 1.6)", txt("bc")),
        ("substring(data, 2)", Value::Bytes(b"ab".to_vec())),
        ("substring(note, 1)", NULL),
        ("substring('abc', NULL)", NULL),
        ("substring('abc', 1, NULL)", NULL),
        ("substring(id, 1, 1)", txt("7")),
    ]);
}

#[test]
fn null_handling_functions() {
    check_table(&[
        ("coalesce(note, status)", txt("active")),
        ("coalesce(note, NULL)", NULL),
        ("coalesce(note, 'x', 'y')", txt("x")),
        ("coalesce(id)", int(7)),
        ("ifnull(note, 'n/a')", txt("n/a")),
        ("ifnull(status, 'n/a')", txt("active")),
        ("coalesce(amount, 0)", dec("123.45")),
        ("coalesce(NULL, id, 1.5)", dec("7")),
        ("coalesce(NULL, price, 1)", dbl(2.5)),
        ("coalesce(NULL, d, created_at)", dt(2024, 3, 15, 0, 0, 0, 0)),
        ("coalesce(NULL, kind)", Value::Enum("b".into())),
        ("coalesce(NULL, kind, status)", txt("b")),
        ("coalesce(nullif(d, d), d, '2024-01-01')", date(2024, 3, 15)),
        ("coalesce(nullif(d, d), '2024-01-01')", date(2024, 1, 1)),
        ("coalesce(NULL, created_at, '2024-01-01')", dt(2024, 3, 15, 10, 30, 45, 0)),
        ("coalesce(NULL, qty, id)", dec("5")),
        ("nullif(id, 7)", NULL),
        ("nullif(id, 8)", int(7)),
        ("nullif(status, 'x')", txt("active")),
        ("nullif(d, '2024-03-15')", NULL),
        ("nullif(note, 'x')", NULL),
        ("if(id > 5, 'big', 'small')", txt("big")),
        ("if(id > 50, 'big', 'small')", txt("small")),
        ("if(note = 'x', 1, 2)", int(2)),
        ("if(flag, amount, 0)", dec("123.45")),
        ("if(0, 1, 2)", int(2)),
        ("if(NULL, 1, 2)", int(2)),
        ("if(id, 'yes', 'no')", txt("yes")),
    ]);
}

#[test]
fn cast_to_every_target_type() {
    check_table(&[
        ("cast('42' AS SIGNED)", int(42)),
        ("cast(' -42 ' AS SIGNED INTEGER)", int(-42)),
        ("cast(amount AS SIGNED)", int(123)),
        ("cast('123.5' AS INT)", int(124)),
        ("cast(-2.5 AS BIGINT)", int(-3)),
        ("cast(price AS SIGNED)", int(3)),
        ("cast('1e3' AS SIGNED)", int(1000)),
        ("cast(flag AS SIGNED)", int(1)),
        ("cast(d AS SIGNED)", int(20240315)),
        ("cast(created_at AS SIGNED)", int(20240315103045)),
        ("cast(t AS SIGNED)", int(103000)),
        ("cast(y AS SIGNED)", int(2024)),
        ("cast(id AS UNSIGNED)", Value::UInt(7)),
        ("cast('18446744073709551615' AS UNSIGNED)", Value::UInt(u64::MAX)),
        ("cast(id AS DECIMAL(5,2))", dec("7.00")),
        ("cast(amount AS DECIMAL(4,1))", dec("123.5")),
        ("cast(amount AS DECIMAL)", dec("123")),
        ("cast(price AS DECIMAL(4,2))", dec("2.50")),
        ("cast(0.1e0 AS DECIMAL(10,5))", dec("0.10000")),
        ("cast('-0.005' AS DECIMAL(5,2))", dec("-0.01")),
        ("cast(price AS DOUBLE)", dbl(2.5)),
        ("cast(id AS DOUBLE)", dbl(7.0)),
        ("cast(amount AS REAL)", dbl(123.45)),
        ("cast('1.5' AS FLOAT)", Value::Float(1.5)),
        ("cast(id AS CHAR)", txt("7")),
        ("cast(status AS CHAR(3))", txt("act")),
        ("cast(name AS VARCHAR(2))", txt("Zo")),
        ("cast(d AS TEXT)", txt("2024-03-15")),
        ("cast(ts AS CHAR)", txt("2024-03-15T10:30:45.123456Z")),
        ("cast('2024-03-15' AS DATE)", date(2024, 3, 15)),
        ("cast('2024-03-15 23:59:59' AS DATE)", date(2024, 3, 15)),
        ("cast(created_at AS DATE)", date(2024, 3, 15)),
        ("cast(ts AS DATE)", date(2024, 3, 15)),
        ("cast(20240315 AS DATE)", date(2024, 3, 15)),
        ("cast(ts AS DATETIME)", dt(2024, 3, 15, 10, 30, 45, 0)),
        ("cast(ts AS DATETIME(6))", dt(2024, 3, 15, 10, 30, 45, 123_456)),
        ("cast(ts AS DATETIME(3))", dt(2024, 3, 15, 10, 30, 45, 123_000)),
        ("cast('2024-03-15 10:30:45.5' AS DATETIME)", dt(2024, 3, 15, 10, 30, 46, 0)),
        ("cast('2024-12-31 23:59:59.9' AS DATETIME)", dt(2025, 1, 1, 0, 0, 0, 0)),
        ("cast(d AS DATETIME)", dt(2024, 3, 15, 0, 0, 0, 0)),
        ("cast(created_at AS TIMESTAMP)", ts(2024, 3, 15, 10, 30, 45, 0)),
        ("cast('2024-03-15 10:30:45+01:00' AS TIMESTAMP)", ts(2024, 3, 15, 9, 30, 45, 0)),
        ("cast(ts AS TIMESTAMP(6))", ts(2024, 3, 15, 10, 30, 45, 123_456)),
        ("cast('12:34:56' AS TIME)", Value::Time(45_296_000_000)),
        ("cast('-838:59:59' AS TIME)", Value::Time(-3_020_399_000_000)),
        ("cast('1 02:00:00' AS TIME)", Value::Time(26 * 3_600_000_000)),
        ("cast('2024-03-15 10:30:45' AS TIME)", Value::Time(37_845_000_000)),
        ("cast(created_at AS TIME)", Value::Time(37_845_000_000)),
        ("cast(ts AS TIME(6))", Value::Time(37_845_123_456)),
        ("cast(id AS JSON)", Value::Json("7".into())),
        ("cast(amount AS JSON)", Value::Json("123.45".into())),
        ("cast('{\"a\": [1, 2]}' AS JSON)", Value::Json("{\"a\": [1, 2]}".into())),
        ("cast(d AS JSON)", Value::Json("\"2024-03-15\"".into())),
        ("cast(flag AS JSON)", Value::Json("true".into())),
        ("cast(doc AS JSON)", Value::Json("{\"a\":1}".into())),
        ("cast(status AS BINARY)", Value::Bytes(b"active".to_vec())),
        ("cast('ab' AS BINARY(4))", Value::Bytes(b"ab\0\0".to_vec())),
        ("cast('abcdef' AS BINARY(2))", Value::Bytes(b"ab".to_vec())),
        ("cast(note AS SIGNED)", NULL),
        ("cast(NULL AS DATE)", NULL),
        ("DATE '2024-03-15'", date(2024, 3, 15)),
        ("TIMESTAMP '2024-03-15 10:30:45'", ts(2024, 3, 15, 10, 30, 45, 0)),
        ("TIME '10:30'", Value::Time(37_800_000_000)),
    ]);
}

#[test]
fn date_format_specifiers() {
    check_table(&[
        ("date_format(created_at, '%Y-%m-%d %H:%i:%s')", txt("2024-03-15 10:30:45")),
        ("date_format(ts, '%f')", txt("123456")),
        ("date_format(ts, '%S.%f')", txt("45.123456")),
        ("date_format(d, '%W %a %M %b %j %D %e %c %y')", txt("Friday Fri March Mar 075 15th 15 3 24")),
        ("date_format(created_at, '%h %I %l %p %r %T %k')", txt("10 10 10 AM 10:30:45 AM 10:30:45 10")),
        ("date_format('2024-03-15 23:05:09', '%h %l %p %k %H')", txt("11 11 PM 23 23")),
        ("date_format('2024-03-15 00:05:09', '%h %p %k')", txt("12 AM 0")),
        ("date_format('2024-01-01', '%U %u %v %x %w')", txt("00 01 01 2024 1")),
        ("date_format('2023-01-01', '%U %u %v %x %w %a')", txt("01 00 52 2022 0 Sun")),
        ("date_format('2024-12-31', '%j %U %v %x')", txt("366 52 01 2025")),
        ("date_format('2024-01-02', '%D') = '2nd'", b(true)),
        ("date_format('2024-01-03', '%D %d')", txt("3rd 03")),
        ("date_format('2024-01-11', '%D')", txt("11th")),
        ("date_format('2024-01-22', '%D')", txt("22nd")),
        ("date_format(created_at, '100%% %q %')", txt("100% q %")),
        ("date_format(ts, '%Y-%m-%dT%H:%i:%s')", txt("2024-03-15T10:30:45")),
        ("date_format(created_at, status)", txt("active")),
        ("date_format(created_at, concat('%', 'Y'))", txt("2024")),
        ("date_format(nullif(d, d), '%Y')", NULL),
        ("date_format(created_at, note)", NULL),
        ("date_format(DATE '0999-02-03', '%Y %y %c')", txt("0999 99 2")),
    ]);
}

#[test]
fn date_format_of_zero_date_is_null_only_for_calendar_specifiers() {
    let mut r = row();
    r[8] = date(0, 0, 0);
    let f = |src: &str| eval_row(src, &r).unwrap();
    assert_eq!(f("date_format(d, '%Y-%m-%d')"), txt("0000-00-00"));
    assert_eq!(f("date_format(d, '%W')"), NULL);
    assert_eq!(f("date_format(d, '%M')"), NULL);
    assert_eq!(f("month(d)"), int(0));
    assert_eq!(f("d < '2000-01-01'"), b(true), "zero dates sort first");
    assert!(compile("date_format(d, '%W')").nullable());
}

#[test]
fn date_part_functions() {
    check_table(&[
        ("year(created_at)", int(2024)),
        ("month(d)", int(3)),
        ("day(ts)", int(15)),
        ("hour(ts)", int(10)),
        ("minute(t)", int(30)),
        ("second(created_at)", int(45)),
        ("hour(t)", int(10)),
        ("year(y)", int(2024)),
        ("year('2024-05-06')", int(2024)),
        ("day('2024-05-06 07:08:09')", int(6)),
        ("hour('838:00:00')", int(838)),
        ("minute('-01:02:03')", int(2)),
        ("year(nullif(d, d))", NULL),
        ("year(ts) = 2024 AND month(ts) IN (1, 2, 3)", b(true)),
    ]);
}

#[test]
fn numeric_functions() {
    check_table(&[
        ("abs(-5)", int(5)),
        ("abs(id)", int(7)),
        ("abs(-1.50)", dec("1.50")),
        ("abs(price * -1)", dbl(2.5)),
        ("abs(-9223372036854775808)", dec("9223372036854775808")),
        ("abs(qty)", Value::UInt(5)),
        ("abs(cast('-1.5' AS FLOAT))", Value::Float(1.5)),
        ("round(2.5)", dec("3")),
        ("round(-2.5)", dec("-3")),
        ("round(2.4)", dec("2")),
        ("round(123.456, 2)", dec("123.46")),
        ("round(123.455, 2)", dec("123.46")),
        ("round(amount, 1)", dec("123.5")),
        ("round(amount, -1)", dec("120")),
        ("round(amount, -3)", dec("0")),
        ("round(1.5, 3)", dec("1.500")),
        ("round(1234, -2)", int(1200)),
        ("round(1250, -2)", int(1300)),
        ("round(-1250, -2)", int(-1300)),
        ("round(id)", int(7)),
        ("round(price)", dbl(3.0)),
        ("round(1.25e0, 1)", dbl(1.3)),
        ("round(1234.5e0, -2)", dbl(1200.0)),
        ("round(amount, NULL)", NULL),
        ("floor(-1.5)", dec("-2")),
        ("floor(1.5)", dec("1")),
        ("ceil(-1.5)", dec("-1")),
        ("ceil(1.2)", dec("2")),
        ("ceil(1.0)", dec("1")),
        ("ceiling(7)", int(7)),
        ("floor(price)", dbl(2.0)),
        ("ceil(price)", dbl(3.0)),
        ("floor(amount)", dec("123")),
        ("mod(7, 3)", int(1)),
        ("mod(-7, 3)", int(-1)),
        ("mod(7, -3)", int(1)),
        ("mod(7, 0)", NULL),
        ("mod(7.5, 2)", dec("1.5")),
        ("mod(price, 1)", dbl(0.5)),
        ("mod(big, 10)", int(5)),
        ("mod(qty, qty)", Value::UInt(0)),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn compile_errors_name_the_problem_and_point_at_it() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("nope > 1", 0, 4, "unknown column `nope` in table db.t; its columns are: `id`, `amount`, `status`"),
        ("`nope`", 0, 6, "unknown column `nope`"),
        (
            "created_at >= '2024-13-01'",
            14,
            12,
            "cannot convert '2024-13-01' to DATETIME(0): month 13 is out of range 1..12",
        ),
        ("d = '2024-02-30'", 4, 12, "cannot convert '2024-02-30' to DATE: day 30 is out of range 1..29 for 2024-02"),
        ("ts > '2024-03-15 25:00:00'", 5, 21, "hour 25 is out of range 0..23"),
        ("t = '10:61'", 4, 7, "minute 61 is out of range 0..59"),
        ("d = 'yesterday'", 4, 11, "cannot convert 'yesterday' to DATE: expected a year of at least 4 digits"),
        ("flag < DATE '2024-01-01'", 0, 24, "cannot compare column `flag` (BOOLEAN) with DATE 2024-01-01"),
        ("flag < '2024-01-01'", 7, 12, "cannot convert '2024-01-01' to BOOLEAN: not a number"),
        ("status = 5", 0, 10, "cannot compare column `status` (VARCHAR(20)) with BIGINT 5"),
        ("d = t", 0, 5, "cannot compare column `d` (DATE) with column `t` (TIME(0))"),
        ("id IN (1, d)", 10, 1, "cannot compare column `id` (BIGINT) with column `d` (DATE)"),
        ("id = '5x'", 5, 4, "cannot convert '5x' to BIGINT: not a number"),
        (
            "foo(1)",
            0,
            3,
            "unknown function 'foo'; known functions: abs, cast, ceil, ceiling, char_length, coalesce, concat",
        ),
        (
            "substring('a')",
            0,
            14,
            "substring() takes 2 to 3 arguments but 1 was given; usage: substring(s, pos[, len])",
        ),
        ("NOW(1)", 0, 6, "now() takes 0 arguments but 1 was given; usage: now()"),
        ("upper()", 0, 7, "upper() takes 1 argument but 0 were given; usage: upper(s)"),
        ("concat()", 0, 8, "concat() takes at least 1 argument but 0 were given"),
        ("id +", 4, 0, "expected an expression, found end of input"),
        ("(id = 1", 7, 0, "expected ')', found end of input"),
        ("id = 1 AND", 10, 0, "expected an expression, found end of input"),
        ("id = 'abc", 5, 4, "unterminated string literal"),
        ("`id", 0, 3, "unterminated quoted identifier"),
        ("id # 1", 3, 1, "unexpected character '#'"),
        ("id = 1 1", 7, 1, "expected an operator or end of input, found number 1"),
        ("id = AND", 5, 3, "expected an expression, found 'AND'"),
        ("id IN ()", 7, 1, "expected an expression, found ')'"),
        ("id BETWEEN 1 OR 2", 13, 2, "expected AND, found 'OR'"),
        ("id IS 1", 6, 1, "expected NULL, found number 1"),
        ("cast(id AS FOO)", 11, 3, "unknown cast type 'FOO'"),
        ("cast(id SIGNED)", 8, 6, "expected AS, found 'SIGNED'"),
        ("cast(id AS DECIMAL(70,2))", 19, 2, "DECIMAL precision must be at most 65"),
        ("cast(id AS DECIMAL(5,6))", 21, 1, "DECIMAL scale 6 is larger than its precision 5"),
        ("cast(id AS DATETIME(7))", 20, 1, "fractional second precision must be at most 6"),
        ("cast(id AS BINARY(65536))", 18, 5, "BINARY length must be at most 65535"),
        ("cast(t AS DATE)", 0, 15, "cannot cast column `t` (TIME(0)) to DATE"),
        ("cast(id AS TIMESTAMP)", 0, 21, "cannot cast column `id` (BIGINT) to TIMESTAMP"),
        ("status + 1", 0, 6, "operator + needs a number, but column `status` (VARCHAR(20)) is not one"),
        ("1 * 'abc'", 4, 5, "cannot convert 'abc' to BIGINT: not a number"),
        ("-status", 1, 6, "unary - needs a number, but column `status` (VARCHAR(20)) is not one"),
        ("status AND flag", 0, 6, "AND needs a boolean condition, but column `status` (VARCHAR(20)) is not one"),
        ("NOT d", 4, 1, "NOT needs a boolean condition"),
        ("if(status, 1, 2)", 3, 6, "if() needs a boolean condition"),
        (
            "date_format(id, '%Y')",
            12,
            2,
            "date_format() needs a date, datetime or timestamp, but column `id` (BIGINT) is not one",
        ),
        ("date_format(d, 5)", 15, 1, "date_format() needs a text format"),
        ("year(id)", 5, 2, "year() needs a date, datetime or timestamp"),
        ("hour(status)", 5, 6, "hour() needs a date, datetime, timestamp or time"),
        ("year('soon')", 5, 6, "year: cannot convert 'soon' to a date: expected a year of at least 4 digits"),
        (
            "coalesce(d, id)",
            12,
            2,
            "coalesce() arguments have incompatible types: column `d` (DATE) and column `id` (BIGINT)",
        ),
        ("if(flag, d, 1)", 12, 1, "if() arguments have incompatible types"),
        ("coalesce(id, 'abc')", 13, 5, "cannot convert 'abc' to BIGINT: not a number"),
        ("substring(status, status)", 18, 6, "substring() position and length needs a number"),
        ("round(status)", 6, 6, "round() needs a number"),
        ("status LIKE 5", 12, 1, "LIKE needs a text pattern, but BIGINT 5 is not text"),
        (
            "cast('abc' AS SIGNED)",
            0,
            21,
            "this constant expression always fails: cast('abc' AS SIGNED): 'abc' is not a number",
        ),
        (
            "DATE '2024-13-01'",
            0,
            17,
            "this constant expression always fails: cast('2024-13-01' AS DATE): month 13 is out of range 1..12",
        ),
        ("id || 'x'", 3, 2, "the '||' operator is not supported"),
        ("1.5.2", 0, 5, "invalid number '1.5.2'"),
        ("12abc", 0, 5, "invalid number '12abc'"),
        ("1.", 0, 2, "expected a digit after '.'"),
        ("``", 0, 2, "empty quoted identifier"),
        ("1e999", 0, 5, "number is out of the range of DOUBLE"),
        (&"9".repeat(66), 0, 66, "integer literal has more than 65 digits"),
        ("", 0, 0, "expected an expression, found end of input"),
    ];
    let mut failures = Vec::new();
    for (src, offset, len, msg) in cases {
        match Expr::compile(src, &schema()) {
            Ok(_) => failures.push(format!("{src}: compiled")),
            Err(e) if e.offset == *offset && e.len == *len && e.message.contains(msg) => {}
            Err(e) => {
                failures.push(format!("{src}: want {offset}+{len} {msg:?}, got {}+{} {:?}", e.offset, e.len, e.message))
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn expr_error_displays_message_and_offset() {
    let e = compile_err("id = 'x'");
    assert_eq!(e.to_string(), "cannot convert 'x' to BIGINT: not a number (at byte 5)");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().contains("BIGINT"));
}

#[test]
fn runtime_errors_name_the_function_and_the_value() {
    let mut r = row();
    r[2] = txt("abc");
    r[16] = txt("2024-13-01");
    let cases: &[(&str, &str)] = &[
        ("cast(status AS SIGNED)", "cast('abc' AS SIGNED): 'abc' is not a number"),
        ("cast(status AS DECIMAL(5,2))", "cast('abc' AS DECIMAL(5,2)): 'abc' is not a number"),
        ("cast(name AS DATE)", "cast('2024-13-01' AS DATE): month 13 is out of range 1..12"),
        ("cast(amount AS DECIMAL(3,1))", "cast(123.45 AS DECIMAL(3,1)): 123.5 is out of the range of DECIMAL(3,1)"),
        (
            "cast(big AS SIGNED)",
            "cast(18446744073709551615 AS SIGNED): 18446744073709551615 is out of the range of SIGNED",
        ),
        ("cast(id - 10 AS UNSIGNED)", "cast(-3 AS UNSIGNED): -3 is out of the range of UNSIGNED"),
        ("cast(status AS JSON)", "cast('abc' AS JSON): invalid JSON"),
        ("cast(status AS TIME)", "cast('abc' AS TIME)"),
        ("cast(status AS TIMESTAMP)", "cast('abc' AS TIMESTAMP): expected a year of at least 4 digits"),
        ("cast(d AS DATE) = cast(status AS DATE)", "cast('abc' AS DATE)"),
        ("price * 1e308", "DOUBLE value is out of range in 2.5 * "),
        ("date_format(cast(status AS DATETIME), '%Y')", "cast('abc' AS DATETIME)"),
    ];
    let mut failures = Vec::new();
    for (src, msg) in cases {
        match compile(src).eval(&r, &ctx()) {
            Err(e) if e.message.contains(msg) => {}
            other => failures.push(format!("{src}: want error {msg:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn eval_bool_maps_null_and_false_to_false_and_rejects_text() {
    let r = row();
    let c = ctx();
    assert!(compile("id = 7").eval_bool(&r, &c).unwrap());
    assert!(!compile("id = 8").eval_bool(&r, &c).unwrap());
    assert!(!compile("NULL").eval_bool(&r, &c).unwrap());
    assert!(compile("id").eval_bool(&r, &c).unwrap(), "non-zero numbers are true");
    assert!(!compile("id - 7").eval_bool(&r, &c).unwrap());
    assert!(compile("flag").eval_bool(&r, &c).unwrap());
    let e = compile("status").eval_bool(&r, &c).unwrap_err();
    assert_eq!(e.message, "expected a boolean condition, got text 'active'");
}

#[test]
fn short_rows_are_an_error_not_a_panic() {
    let e = compile("note IS NULL").eval(&[int(1)], &ctx()).unwrap_err();
    assert!(e.message.contains("row has 1 values but the expression reads column #18"), "{e}");
}

#[test]
fn row_values_of_an_unexpected_kind_are_an_error() {
    let mut r = row();
    r[0] = txt("seven");
    let e = compile("id = 7").eval(&r, &ctx()).unwrap_err();
    assert_eq!(e.message, "cannot compare text 'seven' with int 7");
    let e = compile("id + 1").eval(&r, &ctx()).unwrap_err();
    assert_eq!(e.message, "operator + needs numbers, got text 'seven'");
}

#[test]
fn malformed_row_values_are_handled_without_panicking() {
    let mut r = row();
    r[1] = dec("12x.5");
    r[8] = date(2024, 13, 40);
    let c = ctx();
    for src in
        ["amount > 100", "amount + 1", "round(amount)", "date_format(d, '%M %W %j %Y')", "month(d)", "d > '2024-01-01'"]
    {
        let _ = compile(src).eval(&r, &c);
    }
    assert_eq!(compile("date_format(d, '%M')").eval(&r, &c).unwrap(), NULL);
    assert!(compile_err("t = '100 10:00:00'").message.contains("out of the TIME range"));
}

#[test]
fn nesting_deeper_than_the_limit_is_an_error() {
    let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
    assert!(parse(&deep).unwrap_err().message.contains("nested too deeply"));
    let long = format!("1{}", " + 1".repeat(300));
    assert!(parse(&long).unwrap_err().message.contains("nested too deeply"));
    let negs = format!("{}1", "- ".repeat(300));
    assert!(parse(&negs).unwrap_err().message.contains("nested too deeply"));
    let nots = format!("{}TRUE", "NOT ".repeat(300));
    assert!(parse(&nots).unwrap_err().message.contains("nested too deeply"));
    let ok = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(ev(&ok), int(1));
    let ok = format!("1{}", " + 1".repeat(150));
    assert_eq!(ev(&ok), int(151));
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

#[test]
fn parser_precedence_printed_fully_parenthesized() {
    let cases = [
        ("a OR b AND c", "(`a` OR (`b` AND `c`))"),
        ("a AND b OR c", "((`a` AND `b`) OR `c`)"),
        ("NOT a = b", "(NOT (`a` = `b`))"),
        ("NOT NOT a", "(NOT (NOT `a`))"),
        ("a + b * c - d", "((`a` + (`b` * `c`)) - `d`)"),
        ("a / b % c", "((`a` / `b`) % `c`)"),
        ("-a * b", "((-(`a`)) * `b`)"),
        ("-5 * b", "(-5 * `b`)"),
        ("a - -5", "(`a` - -5)"),
        ("a < b = c", "((`a` < `b`) = `c`)"),
        ("a NOT BETWEEN 1 AND 2 + 3", "(`a` NOT BETWEEN 1 AND (2 + 3))"),
        ("a BETWEEN 1 AND 2 AND b", "((`a` BETWEEN 1 AND 2) AND `b`)"),
        ("x IS NOT NULL AND y NOT IN (1, 'a')", "((`x` IS NOT NULL) AND (`y` NOT IN (1, 'a')))"),
        ("x is null", "(`x` IS NULL)"),
        ("name NOT LIKE 'a%'", "(`name` NOT LIKE 'a%')"),
        ("a LIKE b || c", ""),
        ("CAST(a AS decimal(10, 2))", "CAST(`a` AS DECIMAL(10,2))"),
        ("cast(a as signed integer)", "CAST(`a` AS SIGNED)"),
        ("cast(a as varchar(5))", "CAST(`a` AS CHAR(5))"),
        ("cast(a as double precision)", "CAST(`a` AS DOUBLE)"),
        ("cast(a as datetime(3))", "CAST(`a` AS DATETIME(3))"),
        ("Upper(\"order id\")", "upper(`order id`)"),
        ("f()", "f()"),
        ("`a``b` = \"c\"\"d\"", "(`a``b` = `c\"d`)"),
        ("date '2024-01-01'", "CAST('2024-01-01' AS DATE)"),
        ("date = 1", "(`date` = 1)"),
        ("date(x)", "date(`x`)"),
        ("a<>b", "(`a` != `b`)"),
        ("a!=b", "(`a` != `b`)"),
        ("a<=b", "(`a` <= `b`)"),
        ("a>=b", "(`a` >= `b`)"),
        ("'it''s'", "'it''s'"),
        ("1e3", "1e3"),
        ("0.5E1", "5e0"),
        ("über > 1", "(`über` > 1)"),
        ("$a_1", "`$a_1`"),
        ("  a\n=\t1 ", "(`a` = 1)"),
    ];
    for (src, want) in cases {
        match parse(src) {
            Ok(ast) => assert_eq!(ast.to_string(), want, "{src}"),
            Err(e) => assert!(want.is_empty(), "{src}: {e}"),
        }
    }
}

#[test]
fn spans_cover_the_source_text() {
    let ast = parse("  (a + 1) * f(b)  ").unwrap();
    assert_eq!(ast.span(), Span::new(2, 14));
    match ast {
        Ast::Binary { left, right, .. } => {
            assert_eq!(left.span(), Span::new(2, 7));
            assert_eq!(right.span(), Span::new(12, 4));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn expr_is_clone_debug_send_sync() {
    fn assert_traits<T: Clone + std::fmt::Debug + Send + Sync + 'static>() {}
    assert_traits::<Expr>();
    assert_traits::<ExprError>();
    assert_traits::<EvalError>();
    let e = compile("id > 1");
    let e2 = e.clone();
    assert!(format!("{e2:?}").contains("Cmp"));
}

// ---------------------------------------------------------------------------------------------
// Performance smoke check
// ---------------------------------------------------------------------------------------------

#[test]
fn filter_evaluates_a_million_rows() {
    let e = compile("amount > 100 AND status IN ('a','b')");
    let c = ctx();
    let mut rows = Vec::new();
    for i in 0..4 {
        let mut r = row();
        r[1] = dec(if i % 2 == 0 { "150.00" } else { "50.00" });
        r[2] = txt(if i < 2 { "a" } else { "z" });
        rows.push(r);
    }
    let start = std::time::Instant::now();
    let mut hits = 0;
    for i in 0..1_000_000 {
        if e.eval_bool(&rows[i % 4], &c).unwrap() {
            hits += 1;
        }
    }
    eprintln!("1M filter evaluations: {:?}", start.elapsed());
    assert_eq!(hits, 250_000);
    let e = compile("id > 100 AND created_at >= '2024-01-01'");
    let r = row();
    let start = std::time::Instant::now();
    let hits = (0..1_000_000).filter(|_| e.eval_bool(&r, &c).unwrap()).count();
    eprintln!("1M integer/date filter evaluations: {:?}", start.elapsed());
    assert_eq!(hits, 0);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

const Z: Span = Span { offset: 0, len: 0 };

fn arb_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        any::<i64>().prop_map(Literal::Int),
        ((1u64 << 63)..=u64::MAX).prop_map(Literal::UInt),
        "-?[0-9]{1,30}\\.[0-9]{1,20}".prop_map(|s| Literal::Decimal(canonical_decimal(&s).unwrap())),
        "-?[1-9][0-9]{20,40}".prop_map(Literal::Decimal),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Literal::Double),
        "\\PC{0,8}".prop_map(Literal::String),
        ".{0,4}".prop_map(Literal::String),
    ]
}

fn arb_binop() -> impl Strategy<Value = BinaryOp> {
    use BinaryOp::*;
    proptest::sample::select(vec![Or, And, Eq, Ne, Lt, Le, Gt, Ge, Add, Sub, Mul, Div, Mod])
}

fn arb_cast() -> impl Strategy<Value = CastType> {
    prop_oneof![
        Just(CastType::Signed),
        Just(CastType::Unsigned),
        (1u8..=65, 0u8..=30)
            .prop_filter("scale <= precision", |(p, s)| s <= p)
            .prop_map(|(precision, scale)| CastType::Decimal { precision, scale }),
        Just(CastType::Double),
        Just(CastType::Float),
        proptest::option::of(any::<u32>()).prop_map(CastType::Char),
        Just(CastType::Date),
        (0u8..=6).prop_map(CastType::DateTime),
        (0u8..=6).prop_map(CastType::Timestamp),
        (0u8..=6).prop_map(CastType::Time),
        Just(CastType::Json),
        proptest::option::of(0u32..=super::parser::MAX_BINARY_LEN).prop_map(CastType::Binary),
    ]
}

fn arb_call_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,7}".prop_filter("not a keyword", |s| !super::parser::is_reserved(s) && s != "cast")
}

fn arb_ast() -> impl Strategy<Value = Ast> {
    let leaf = prop_oneof![
        arb_literal().prop_map(|l| Ast::Literal(l, Z)),
        "\\PC{1,8}".prop_map(|c| Ast::Column(c, Z)),
        "[a-z]{1,3}".prop_map(|c| Ast::Column(c, Z)),
    ];
    leaf.prop_recursive(5, 64, 4, |inner| {
        let bx = |a: Ast| Box::new(a);
        prop_oneof![
            (proptest::sample::select(vec![UnaryOp::Not, UnaryOp::Neg]), inner.clone())
                .prop_map(move |(op, a)| Ast::Unary { op, operand: bx(a), span: Z }),
            (arb_binop(), inner.clone(), inner.clone()).prop_map(move |(op, l, r)| Ast::Binary {
                op,
                left: bx(l),
                right: bx(r),
                span: Z
            }),
            (inner.clone(), any::<bool>()).prop_map(move |(a, negated)| Ast::IsNull {
                operand: bx(a),
                negated,
                span: Z
            }),
            (inner.clone(), proptest::collection::vec(inner.clone(), 1..4), any::<bool>())
                .prop_map(move |(a, list, negated)| Ast::InList { operand: bx(a), list, negated, span: Z }),
            (inner.clone(), inner.clone(), inner.clone(), any::<bool>()).prop_map(move |(a, l, h, negated)| {
                Ast::Between { operand: bx(a), low: bx(l), high: bx(h), negated, span: Z }
            }),
            (inner.clone(), inner.clone(), any::<bool>()).prop_map(move |(a, p, negated)| Ast::Like {
                operand: bx(a),
                pattern: bx(p),
                negated,
                span: Z
            }),
            (arb_call_name(), proptest::collection::vec(inner.clone(), 0..3)).prop_map(|(name, args)| Ast::Call {
                name,
                args,
                span: Z
            }),
            (inner.clone(), arb_cast()).prop_map(move |(a, ty)| Ast::Cast { operand: bx(a), ty, span: Z }),
        ]
    })
}

/// A number of one of the exact kinds, with its value scaled by 10^6 for i128 comparison.
#[derive(Clone, Debug)]
enum ExactNum {
    I(i64),
    U(u64),
    /// mantissa, scale (0..=6)
    D(i128, u32),
}

impl ExactNum {
    fn scaled(&self) -> i128 {
        match self {
            ExactNum::I(i) => *i as i128 * 1_000_000,
            ExactNum::U(u) => *u as i128 * 1_000_000,
            ExactNum::D(m, s) => m * 10i128.pow(6 - s),
        }
    }
    fn text(&self) -> String {
        match self {
            ExactNum::I(i) => i.to_string(),
            ExactNum::U(u) => u.to_string(),
            ExactNum::D(m, s) => {
                let digits = format!("{:0>width$}", m.unsigned_abs(), width = *s as usize + 1);
                let (i, f) = digits.split_at(digits.len() - *s as usize);
                let sign = if *m < 0 { "-" } else { "" };
                if f.is_empty() {
                    format!("{sign}{i}")
                } else {
                    format!("{sign}{i}.{f}")
                }
            }
        }
    }
    fn value(&self) -> Value {
        match self {
            ExactNum::I(i) => Value::Int(*i),
            ExactNum::U(u) => Value::UInt(*u),
            ExactNum::D(..) => Value::Decimal(canonical_decimal(&self.text()).unwrap()),
        }
    }
    fn ty(&self) -> ColumnType {
        match self {
            ExactNum::I(_) => ColumnType::Int { bits: 64, unsigned: false },
            ExactNum::U(_) => ColumnType::Int { bits: 64, unsigned: true },
            ExactNum::D(_, s) => ColumnType::Decimal { precision: 65, scale: *s as u8 },
        }
    }
}

fn arb_exact() -> impl Strategy<Value = ExactNum> {
    const E30: i128 = 1_000_000_000_000_000_000_000_000_000_000;
    prop_oneof![
        any::<i64>().prop_map(ExactNum::I),
        (-5i64..5).prop_map(ExactNum::I),
        any::<u64>().prop_map(ExactNum::U),
        ((u64::MAX - 3)..=u64::MAX).prop_map(ExactNum::U),
        (-E30..E30, 0u32..=6).prop_map(|(m, s)| ExactNum::D(m, s)),
        (-50i128..50, 0u32..=6).prop_map(|(m, s)| ExactNum::D(m, s)),
    ]
}

/// Pairs of numbers, often equal or adjacent in different representations.
fn arb_exact_pair() -> impl Strategy<Value = (ExactNum, ExactNum)> {
    (arb_exact(), arb_exact(), 0u8..4).prop_map(|(a, b, mode)| {
        let near = match mode {
            2 => ExactNum::D(a.scaled(), 6),
            3 => ExactNum::D(a.scaled() + 1, 6),
            _ => return (a, b),
        };
        (a, near)
    })
}

fn reference_substring(s: &str, pos: i64, len: Option<i64>) -> String {
    let c: Vec<char> = s.chars().collect();
    let n = c.len() as i64;
    if pos == 0 || pos > n || pos < -n {
        return String::new();
    }
    let start = if pos > 0 { pos - 1 } else { n + pos };
    let l = len.unwrap_or(n);
    if l <= 0 {
        return String::new();
    }
    let end = (start + l).min(n);
    c[start as usize..end as usize].iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn printed_ast_parses_back_to_the_same_tree(ast in arb_ast()) {
        let text = ast.to_string();
        let back = parse(&text).map(|a| a.without_spans());
        prop_assert_eq!(back, Ok(ast.without_spans()), "text: {}", text);
    }

    #[test]
    fn parser_and_compiler_never_panic_on_arbitrary_text(src in "\\PC{0,40}") {
        let _ = parse(&src);
        if let Ok(e) = Expr::compile(&src, &schema()) {
            let _ = e.eval(&row(), &ctx());
        }
    }

    #[test]
    fn parser_and_compiler_never_panic_on_token_soup(
        src in "( |id|amount|status|d|ts|t|note|name|data|flag|big|qty|price|kind|y|'a'|'2024-01-01'|1|-|0|1.5|1e3|\\(|\\)|,|\\+|\\*|/|%|=|<|>=|<>|AND|OR|NOT|IS|NULL|IN|BETWEEN|LIKE|TRUE|cast|AS|SIGNED|DATE|concat|substring|coalesce|if|round|date_format|'%Y'){0,24}"
    ) {
        let _ = parse(&src);
        if let Ok(e) = Expr::compile(&src, &schema()) {
            let _ = e.eval(&row(), &ctx());
            let mut nulls = row();
            for v in nulls.iter_mut().skip(1) {
                *v = Value::Null;
            }
            let _ = e.eval(&nulls, &ctx());
        }
    }

    #[test]
    fn exact_number_comparison_agrees_with_i128((a, b) in arb_exact_pair()) {
        let want = a.scaled().cmp(&b.scaled());
        let schema = TableSchema {
            name: TableName::new("db", "n"),
            columns: vec![Column::new("a", a.ty(), false), Column::new("b", b.ty(), false)],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        };
        let r = [a.value(), b.value()];
        for (op, holds) in [
            ("<", want.is_lt()), ("<=", want.is_le()), ("=", want.is_eq()),
            ("!=", want.is_ne()), (">", want.is_gt()), (">=", want.is_ge()),
        ] {
            let by_columns = Expr::compile(&format!("a {op} b"), &schema).unwrap().eval(&r, &ctx()).unwrap();
            prop_assert_eq!(&by_columns, &Value::Bool(holds), "{} {} {}", a.text(), op, b.text());
            let src = format!("{} {op} {}", a.text(), b.text());
            let by_literals = Expr::compile(&src, &schema).unwrap().eval(&r, &ctx()).unwrap();
            prop_assert_eq!(&by_literals, &Value::Bool(holds), "{}", src);
        }
    }

    #[test]
    fn substring_agrees_with_a_reference(
        s in "[a-zé€😀 ]{0,12}",
        pos in -15i64..15,
        len in proptest::option::of(-3i64..15),
    ) {
        let src = match len {
            Some(l) => format!("substring(name, {pos}, {l})"),
            None => format!("substring(name, {pos})"),
        };
        let mut r = row();
        r[16] = Value::Text(s.clone());
        let got = eval_row(&src, &r).unwrap();
        prop_assert_eq!(got, Value::Text(reference_substring(&s, pos, len)), "{}", src);
    }

    #[test]
    fn like_agrees_with_a_reference(s in "[ab%_]{0,8}", p in "[ab%_]{0,6}") {
        fn reference(s: &[char], p: &[char]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some(('%', rest)) => (0..=s.len()).any(|i| reference(&s[i..], rest)),
                Some(('_', rest)) => !s.is_empty() && reference(&s[1..], rest),
                Some((c, rest)) => s.first() == Some(c) && reference(&s[1..], rest),
            }
        }
        let sc: Vec<char> = s.chars().collect();
        let pc: Vec<char> = p.chars().collect();
        let want = reference(&sc, &pc);
        let got = super::eval::like_match(&super::eval::compile_like(&p), &s);
        prop_assert_eq!(got, want, "{:?} LIKE {:?}", s, p);
    }

    #[test]
    fn decimal_addition_and_multiplication_agree_with_i128(
        a in -1_000_000_000_000i128..1_000_000_000_000, sa in 0u32..=6,
        b in -1_000_000_000_000i128..1_000_000_000_000, sb in 0u32..=6,
    ) {
        let x = ExactNum::D(a, sa);
        let y = ExactNum::D(b, sb);
        let sum = eval_row(&format!("{} + {}", x.text(), y.text()), &row()).unwrap();
        let want_sum = ExactNum::D(x.scaled() + y.scaled(), 6);
        prop_assert_eq!(crate::expr::eval::compare(&sum, &want_sum.value()).unwrap(), Some(std::cmp::Ordering::Equal));
        let prod = eval_row(&format!("{} * {}", x.text(), y.text()), &row()).unwrap();
        let want_prod = Value::Decimal(canonical_decimal(&ExactNum::D(a * b, sa + sb).text_wide(sa + sb)).unwrap());
        prop_assert_eq!(crate::expr::eval::compare(&prod, &want_prod).unwrap(), Some(std::cmp::Ordering::Equal),
            "{} * {} = {:?}", x.text(), y.text(), prod);
    }
}

impl ExactNum {
    /// Like `text` for a decimal with any scale (for products, whose scale can reach 12).
    fn text_wide(&self, scale: u32) -> String {
        let ExactNum::D(m, _) = self else { return self.text() };
        let digits = format!("{:0>width$}", m.unsigned_abs(), width = scale as usize + 1);
        let (i, f) = digits.split_at(digits.len() - scale as usize);
        let sign = if *m < 0 { "-" } else { "" };
        if f.is_empty() {
            format!("{sign}{i}")
        } else {
            format!("{sign}{i}.{f}")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL kinds: UUIDs, intervals, arrays, special decimals, far and infinite dates
// ---------------------------------------------------------------------------------------------

const UUID: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";

fn pg_schema() -> TableSchema {
    let array = |element: ColumnType| ColumnType::Array { element: Box::new(element) };
    let numeric = ColumnType::Decimal { precision: 0, scale: 0 };
    TableSchema {
        name: TableName { database: "db".into(), schema: Some("public".into()), table: "pg".into() },
        columns: vec![
            col("u", ColumnType::Uuid, false),
            col("u2", ColumnType::Uuid, true),
            col("iv", ColumnType::Interval, true),
            col("tags", array(ColumnType::String { max_chars: None, fixed: false }), true),
            col("ints", array(ColumnType::Int { bits: 32, unsigned: false }), true),
            col("grid", array(ColumnType::Int { bits: 32, unsigned: false }), true),
            col("n_inf", numeric.clone(), true),
            col("n_neg_inf", numeric.clone(), true),
            col("n_nan", numeric, true),
            col("bc", ColumnType::Date, true),
            col("far", ColumnType::Date, true),
            col("ts_inf", ColumnType::Timestamp { fsp: 6 }, true),
            col("addr", ColumnType::Other { name: "inet".into() }, true),
            col("name", ColumnType::String { max_chars: None, fixed: false }, true),
            col("days", ColumnType::Array { element: Box::new(ColumnType::Date) }, true),
        ],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    }
}

fn pg_row() -> Vec<Value> {
    let ints = |v: &[Option<i64>]| Value::Array(v.iter().map(|x| x.map_or(NULL, int)).collect());
    vec![
        Value::Uuid(crate::value::parse_uuid(UUID).unwrap()),
        NULL,
        Value::Interval(crate::value::Interval::new(0, 30, 0)),
        Value::Array(vec![txt("a"), txt("b c")]),
        ints(&[Some(1), Some(2), None]),
        Value::Array(vec![ints(&[Some(1), Some(2)]), ints(&[Some(3), Some(4)])]),
        dec("Infinity"),
        dec("-Infinity"),
        dec("NaN"),
        date(-44, 3, 15),
        date(10_000, 1, 1),
        Value::Timestamp(crate::value::TIMESTAMP_INFINITY),
        txt("192.168.0.1/24"),
        txt("x"),
        Value::Array(vec![date(2024, 1, 1), date(-4712, 1, 1)]),
    ]
}

fn pg_eval(src: &str) -> Result<Value, EvalError> {
    let e = Expr::compile(src, &pg_schema()).unwrap_or_else(|e| panic!("{src}: {e}"));
    e.eval(&pg_row(), &ctx())
}

fn pg_table(cases: &[(&str, Value)]) {
    let mut failures = Vec::new();
    for (src, want) in cases {
        match pg_eval(src) {
            Ok(got) if &got == want => {}
            other => failures.push(format!("{src}: want {want:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

fn pg_errors(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (src, msg) in cases {
        match Expr::compile(src, &pg_schema()) {
            Ok(e) => failures.push(format!("{src}: compiled to {e:?}")),
            Err(e) if e.message.contains(msg) => {}
            Err(e) => failures.push(format!("{src}: want {msg:?}, got {:?}", e.message)),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn uuid_compares_with_string_literals_converted_at_compile_time() {
    pg_table(&[
        (&format!("u = '{UUID}'"), b(true)),
        ("u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", b(true)),
        ("u = '{a0eebc999c0b4ef8bb6d6bb9bd380a11}'", b(true)),
        ("u != 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'", b(true)),
        ("u < 'b0000000-0000-0000-0000-000000000000'", b(true)),
        (&format!("u IN ('00000000-0000-0000-0000-000000000000', '{UUID}')"), b(true)),
        ("u = u2", NULL),
        ("u2 IS NULL", b(true)),
        ("u IS NOT NULL", b(true)),
        ("cast(u AS CHAR)", txt(UUID)),
        ("concat('id-', u)", txt(&format!("id-{UUID}"))),
        ("coalesce(u2, u)", pg_row()[0].clone()),
        (&format!("coalesce(u2, '{UUID}') = u"), b(true)),
        ("upper(u)", txt(&UUID.to_uppercase())),
        ("cast(u AS JSON)", Value::Json(format!("\"{UUID}\""))),
    ]);
    let e = Expr::compile(&format!("u = '{}'", UUID.to_uppercase()), &pg_schema()).unwrap();
    assert_eq!(e.columns(), vec![0]);
    pg_errors(&[
        ("u = 'xyz'", "cannot convert 'xyz' to UUID: not a UUID"),
        ("u = 1", "cannot compare column `u` (UUID) with BIGINT 1"),
        ("u = name", "cannot compare column `u` (UUID) with column `name` (TEXT)"),
        ("u + 1", "operator + needs a number, but column `u` (UUID) is not one"),
        ("cast(u AS SIGNED)", "cannot cast column `u` (UUID) to SIGNED"),
        ("coalesce(u, name)", "coalesce() arguments have incompatible types"),
        ("u AND TRUE", "AND needs a boolean condition, but column `u` (UUID) is not one"),
    ]);
}

#[test]
fn interval_comparisons_follow_postgresql_month_and_day_lengths() {
    pg_table(&[
        ("iv = '30 days'", b(true)),
        ("iv = 'P30D'", b(true)),
        ("iv = '1 mon'", b(true)),
        ("iv = '720:00:00'", b(true)),
        ("iv != '1 mon 1 second'", b(true)),
        ("iv > '29 days 23:59:59.999999'", b(true)),
        ("iv BETWEEN '1 day' AND 'P2M'", b(true)),
        ("iv IN ('1 week', '-1 days ago')", b(false)),
        ("iv IN ('1 week', '4 weeks 2 days')", b(true)),
        ("iv = 'infinity'", b(false)),
        ("iv < 'infinity'", b(true)),
        ("cast(iv AS CHAR)", txt("30 days")),
        ("cast(iv AS JSON)", Value::Json("\"P30D\"".into())),
        ("concat(iv, '!')", txt("30 days!")),
        ("coalesce(iv, '1 day')", pg_row()[2].clone()),
        ("nullif(iv, '1 mon')", NULL),
    ]);
    pg_errors(&[
        ("iv = '1 fortnight'", "cannot convert '1 fortnight' to INTERVAL: unknown interval unit 'fortnight'"),
        ("iv = '1.5 years'", "fractional years are not supported"),
        ("iv = 30", "cannot compare column `iv` (INTERVAL) with BIGINT 30"),
        ("iv > t", "unknown column `t`"),
        ("cast(iv AS TIME)", "cannot cast column `iv` (INTERVAL) to TIME"),
        ("-iv", "unary - needs a number"),
    ]);
}

#[test]
fn array_equality_with_literals_and_columns_and_no_ordering() {
    pg_table(&[
        ("tags = '{a,\"b c\"}'", b(true)),
        ("tags = '{a}'", b(false)),
        ("tags != '{a, b c}'", b(false)),
        ("tags IN ('{x}', '{a,\"b c\"}')", b(true)),
        ("ints = '{1,2,NULL}'", b(true)),
        ("ints = '{1,2}'", b(false)),
        ("ints = '{1,2,3}'", b(false)),
        ("grid = '{{1,2},{3,4}}'", b(true)),
        ("grid = '{1,2,3,4}'", b(false)),
        ("ints = grid", b(false)),
        ("ints = ints", b(true)),
        ("days = '{2024-01-01,-4712-01-01}'", b(true)),
        ("tags IS NULL", b(false)),
        ("nullif(ints, '{1,2,NULL}')", NULL),
        ("cast(tags AS CHAR)", txt("{a,\"b c\"}")),
        ("cast(grid AS CHAR)", txt("{{1,2},{3,4}}")),
        ("cast(ints AS JSON)", Value::Json("[1,2,null]".into())),
        ("cast(days AS JSON)", Value::Json("[\"2024-01-01\",\"-4712-01-01\"]".into())),
        ("concat('tags: ', tags)", txt("tags: {a,\"b c\"}")),
        ("coalesce(ints, '{7}')", pg_row()[4].clone()),
        ("coalesce(NULL, '{7}', ints)", Value::Array(vec![int(7)])),
    ]);
    pg_errors(&[
        ("tags < '{a}'", "operator < is not defined for arrays (column `tags` (TEXT[]))"),
        ("ints >= ints", "operator >= is not defined for arrays"),
        ("ints BETWEEN '{1}' AND '{9}'", "BETWEEN is not defined for arrays"),
        ("ints = tags", "cannot compare column `ints` (INT[]) with column `tags` (TEXT[])"),
        ("ints = '{1,x}'", "cannot convert '{1,x}' to INT[]: element 'x': not a number"),
        ("ints = '{1,2'", "unterminated array"),
        ("ints = '[0:1]={1,2}'", "explicit bounds"),
        ("ints = 1", "cannot compare column `ints` (INT[]) with BIGINT 1"),
        ("tags = name", "cannot compare column `tags` (TEXT[]) with column `name` (TEXT)"),
        ("cast(ints AS SIGNED)", "cannot cast column `ints` (INT[]) to SIGNED"),
        ("ints + 1", "operator + needs a number"),
    ]);
}

#[test]
fn decimal_special_values_compare_and_compute_as_postgresql() {
    pg_table(&[
        ("n_inf = 'Infinity'", b(true)),
        ("n_nan = 'NaN'", b(true)),
        ("n_nan = n_nan", b(true)),
        ("n_nan > n_inf", b(true)),
        ("n_inf > 99999999999999999999999999999999999999999999999999999999999999999", b(true)),
        ("n_inf > 1e308", b(true)),
        ("n_neg_inf < -1e308", b(true)),
        ("n_neg_inf < -99999999999999999999999999999999999999999999999999999999999999999", b(true)),
        ("n_nan > 1e308", b(true)),
        ("n_inf = '+inf'", b(true)),
        ("n_inf IN (1, 'Infinity')", b(true)),
        ("n_inf + 1", dec("Infinity")),
        ("n_inf - n_inf", dec("NaN")),
        ("n_inf * -1", dec("-Infinity")),
        ("1 / n_inf", dec("0")),
        ("n_nan + 1", dec("NaN")),
        ("1 / n_nan", dec("NaN")),
        ("n_inf / 0", NULL),
        ("-n_inf", dec("-Infinity")),
        ("-n_nan", dec("NaN")),
        ("abs(n_neg_inf)", dec("Infinity")),
        ("round(n_nan, 2)", dec("NaN")),
        ("floor(n_neg_inf)", dec("-Infinity")),
        ("cast(n_inf AS CHAR)", txt("Infinity")),
        ("cast(n_neg_inf AS DECIMAL(10,2))", dec("-Infinity")),
        ("cast(n_inf AS DOUBLE)", dbl(f64::INFINITY)),
        ("coalesce(n_nan, 1.5)", dec("NaN")),
        ("if(n_nan, 'true', 'false')", txt("true")),
    ]);
    assert!(pg_eval("cast(n_inf AS SIGNED)").is_err());
    pg_errors(&[("n_inf = 'infinite'", "cannot convert 'infinite' to NUMERIC: not a number")]);
    // Integers have no special values.
    let e = Expr::compile("id = 'NaN'", &schema()).unwrap_err();
    assert!(e.message.contains("not a number"), "{e}");
}

#[test]
fn dates_beyond_9999_and_bc_dates_and_infinities_in_expressions() {
    pg_table(&[
        ("bc = '-0044-03-15'", b(true)),
        ("bc < '0001-01-01'", b(true)),
        ("far = '10000-01-01'", b(true)),
        ("far > '9999-12-31 23:59:59'", b(true)),
        ("far < '5874897-12-31'", b(true)),
        ("year(bc)", int(-44)),
        ("year(far)", int(10_000)),
        ("date_format(bc, '%Y/%y %M %W')", txt("-0044/44 March Thursday")),
        ("date_format(far, '%Y-%m-%d %j')", txt("10000-01-01 001")),
        ("cast(bc AS CHAR)", txt("-0044-03-15")),
        ("cast(bc AS SIGNED)", int(-440_315)),
        ("cast(far AS DATETIME)", dt(10_000, 1, 1, 0, 0, 0, 0)),
        ("cast(bc AS TIMESTAMP) < '0000-01-01T00:00:00Z'", b(true)),
        ("cast('-4712-01-01 12:00:00' AS DATETIME)", dt(-4712, 1, 1, 12, 0, 0, 0)),
        ("ts_inf = 'infinity'", b(true)),
        ("ts_inf > '294247-01-01'", b(true)),
        ("ts_inf > far", b(true)),
        ("ts_inf != '-infinity'", b(true)),
        ("cast(ts_inf AS CHAR)", txt("infinity")),
        ("cast(ts_inf AS DATETIME)", Value::DateTime(DateTime::INFINITY)),
        ("cast(ts_inf AS DATE)", Value::Date(Date::INFINITY)),
        ("cast(ts_inf AS TIMESTAMP(0))", pg_row()[11].clone()),
        ("date_format(ts_inf, '%Y')", txt("infinity")),
        ("bc > '-infinity'", b(true)),
        ("coalesce(NULL, bc)", date(-44, 3, 15)),
    ]);
    assert!(pg_eval("year(ts_inf)").unwrap_err().message.contains("an infinite date has no fields"));
    assert!(pg_eval("cast(ts_inf AS SIGNED)").is_err());
    pg_errors(&[
        ("bc = '12345678-01-01'", "the year has more than 7 digits"),
        ("bc = '-044-01-01'", "expected a year of at least 4 digits"),
        ("ts_inf = '294276-12-31 00:00:00'", "is out of the range of TIMESTAMP"),
    ]);
}

#[test]
fn other_types_compare_as_text() {
    pg_table(&[
        ("addr = '192.168.0.1/24'", b(true)),
        ("addr LIKE '192.%'", b(true)),
        ("addr = name", b(false)),
        ("concat(addr, '')", txt("192.168.0.1/24")),
    ]);
}

#[test]
fn calls_any_finds_a_function_anywhere_in_the_tree() {
    let volatile = ["now", "event_time"];
    assert!(parse("concat(a, '-', year(now()))").unwrap().calls_any(&volatile));
    assert!(parse("CAST(EVENT_TIME() AS CHAR) LIKE '2%'").unwrap().calls_any(&volatile));
    assert!(parse("a BETWEEN 1 AND if(b, now(), 3)").unwrap().calls_any(&volatile));
    assert!(!parse("concat(a, '-', b) IN ('x', upper(c))").unwrap().calls_any(&volatile));
}
