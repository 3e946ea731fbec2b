//! The classifier's cost: a cache hit (every statement after the first of its shape), a
//! miss on pgbench's UPDATE, and a miss on the catalog query psql runs for `\d`.
//!
//! `cargo bench -p pgvigil --bench classify`. Misses are measured with the cache
//! disabled, hits with a warm cache; each includes splitting and redaction, as the
//! session pays them.

use criterion::{criterion_group, criterion_main, Criterion};
use pgvigil::sql::{Classifier, ClassifierOptions};
use std::hint::black_box;

const PGBENCH_UPDATE: &str =
    "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 81234;";

const PSQL_D: &str = r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','v','m','S','f','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#;

fn bench(c: &mut Criterion) {
    let warm = Classifier::new(ClassifierOptions::default());
    warm.classify_query(PGBENCH_UPDATE);
    c.bench_function("cache hit (pgbench UPDATE, other literals)", |b| {
        b.iter(|| {
            warm.classify_query(black_box(
                "UPDATE pgbench_accounts SET abalance = abalance + 1234 WHERE aid = 5;",
            ))
        })
    });
    let cold = Classifier::new(ClassifierOptions {
        cache_bytes: 0,
        ..ClassifierOptions::default()
    });
    c.bench_function("miss: pgbench UPDATE", |b| {
        b.iter(|| cold.classify_query(black_box(PGBENCH_UPDATE)))
    });
    c.bench_function("miss: psql \\d catalog query", |b| {
        b.iter(|| cold.classify_query(black_box(PSQL_D)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
