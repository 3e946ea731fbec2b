use super::*;
use crate::sql::{Classification, ParsePath};

fn entry() -> Arc<Classification> {
    Arc::new(Classification::unknown(ParsePath::Ast))
}

#[test]
fn stays_within_its_byte_budget() {
    let cost = entry().heap_bytes() + ENTRY_OVERHEAD;
    let cache = Cache::new(cost * 10);
    for k in 0..1000 {
        cache.insert(k, entry());
    }
    assert!(cache.len() <= 10, "{} entries", cache.len());
    assert!(cache.get(999).is_some(), "the newest entry is kept");
    assert!(cache.get(0).is_none(), "the oldest entry is gone");
}

#[test]
fn a_hit_in_the_old_generation_survives_rotation() {
    let cost = entry().heap_bytes() + ENTRY_OVERHEAD;
    let cache = Cache::new(cost * 8);
    cache.insert(1, entry());
    for k in 100..104 {
        cache.insert(k, entry());
    }
    // 1 is now old; using it promotes it.
    assert!(cache.get(1).is_some());
    for k in 200..203 {
        cache.insert(k, entry());
    }
    assert!(cache.get(1).is_some());
}

#[test]
fn zero_budget_disables() {
    let cache = Cache::new(0);
    cache.insert(1, entry());
    assert!(cache.get(1).is_none());
}
