//! What a read-only session may not run. PostgreSQL refuses the writes themselves (the
//! server session starts with `default_transaction_read_only = on`, so even a write hidden
//! in a function fails); pgvigil refuses what would turn that off, with a deliberately
//! blunt test: a false refusal costs a read-only user a `SET`, a missed one costs the
//! guarantee.

use super::{Denial, BY_READ_ONLY, DENIED};
use crate::sql::Statement;

/// The refusal of `st` in a read-only session, if it could undo read-only.
pub fn check(st: &Statement) -> Option<Denial> {
    let c = &st.class;
    // Lowercased only for the few commands whose text is looked into.
    let text = || st.text.to_ascii_lowercase();
    let refuse = |what: &str| {
        Some(Denial::builtin(
            BY_READ_ONLY,
            DENIED,
            &format!("read-only access: {what} is not allowed"),
        ))
    };
    // set_config() can set any parameter, under a name built at run time.
    if c.functions.iter().any(|f| is_fn(f, "set_config")) {
        return refuse("set_config()");
    }
    // dblink opens a second server session, which is not read-only.
    if c.functions.iter().any(|f| fn_name(f).starts_with("dblink")) {
        return refuse("dblink");
    }
    let cmd = c.command.as_str();
    match cmd {
        // A DO block runs any statement (SET included) where pgvigil cannot see it.
        "DO" => refuse("DO"),
        // Any mention of read/write state, including through quoted or escaped names
        // (`U&"..."`), in SET/RESET.
        "SET" | "RESET" => {
            let text = text();
            if text.contains("read") || text.contains("u&") || text.contains('\\') {
                refuse("changing the transaction's read-only setting")
            } else {
                None
            }
        }
        // BEGIN READ WRITE, START TRANSACTION ... READ WRITE, SET TRANSACTION READ WRITE,
        // SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE.
        _ if (cmd.starts_with("BEGIN")
            || cmd.starts_with("START")
            || cmd.starts_with("SET")
            || cmd == "UNKNOWN")
            && text().contains("write") =>
        {
            refuse("a read-write transaction")
        }
        // Anything pgvigil could not classify that mentions the setting.
        "UNKNOWN" if text().contains("read") => {
            refuse("changing the transaction's read-only setting")
        }
        _ => None,
    }
}

fn fn_name(f: &str) -> &str {
    f.rsplit_once('.').map_or(f, |(_, n)| n)
}

fn is_fn(f: &str, name: &str) -> bool {
    fn_name(f) == name
}

/// The refusal of a FunctionCall message in a read-only session: it names its function
/// by number, which could be `set_config`.
pub fn function_call() -> Denial {
    Denial::builtin(
        BY_READ_ONLY,
        DENIED,
        "read-only access: FunctionCall messages are not allowed",
    )
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::sql::{Classifier, ClassifierOptions};

    #[test]
    fn refuses_what_undoes_read_only() {
        let c = Classifier::new(ClassifierOptions::default());
        for sql in [
            "SET default_transaction_read_only = off",
            "set session default_transaction_read_only to off",
            "SET LOCAL transaction_read_only = off",
            "SET U&\"default\\0074ransaction_re\\0061d_only\" = off",
            "BEGIN READ WRITE",
            "begin transaction isolation level serializable, read write",
            "START TRANSACTION READ WRITE",
            "SET TRANSACTION READ WRITE",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT pg_catalog.set_config('transaction_' || 'read_only', 'off', true)",
            "DO $$BEGIN EXECUTE 'SET default_transaction_read_only = off'; END$$",
            "SELECT dblink_exec('dbname=app', 'DELETE FROM t')",
            "RESET default_transaction_read_only",
        ] {
            let st = c.classify_statement(sql);
            assert!(
                check(&st).is_some(),
                "{sql} was let through ({})",
                st.class.command
            );
        }
        for sql in [
            "SELECT * FROM t",
            "BEGIN",
            "BEGIN READ ONLY",
            "SET search_path = app",
            "SHOW transaction_read_only",
            "COMMIT",
        ] {
            let st = c.classify_statement(sql);
            assert!(check(&st).is_none(), "{sql} was refused");
        }
    }
}
