//! The private test servers that `scripts/test` starts are configured as the connectors need:
//! PostgreSQL with logical decoding (the PostgreSQL source and sink tests build on it).

mod common;

#[test]
fn private_postgresql_runs_with_wal_level_logical_on_its_own_port() {
    let url = common::mysql::url("FERRY_TEST_PG_URL");
    assert!(!url.contains(":5432/"), "the test server must not use the default port: {url}");
    let out =
        std::process::Command::new("psql").args([url.as_str(), "-Atc", "SHOW wal_level"]).output().expect("psql runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "logical");
}
