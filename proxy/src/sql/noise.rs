//! Tool catalog noise: statements that provably only read catalog state.

/// True for relations in `pg_catalog` or `information_schema`, qualified or not.
pub fn is_catalog_relation(_name: &str) -> bool {
    false
}
