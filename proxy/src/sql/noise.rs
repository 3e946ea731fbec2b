//! Tool catalog noise: statements that provably only read catalog state.
//!
//! Drivers, pools and GUI tools send a steady stream of catalog queries, session settings
//! and transaction control; marking them lets the audit trail be filtered the way
//! pgAudit's `log_catalog = off` does. Hiding a human's real action is the one error that
//! cannot be forgiven, so every test here is an allow-list and anything not understood is
//! not noise.
//!
//! The verdict here assumes unqualified names resolve to `pg_catalog` (the text cannot
//! tell otherwise). Each session checks that assumption against the database before the
//! verdict is logged (`audit::shadow`: user functions of allow-listed names, the search
//! path); only `pg_catalog.`-qualified names need no check.

use super::{names, Object};

/// What a statement is, as far as noise cares. Produced by the AST and token paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A query that only reads: no `SELECT INTO`, no row locks, no data-modifying CTE, no
    /// operator or construct the classifier could not follow.
    ReadQuery,
    /// `SHOW x`.
    Show,
    /// `SET`/`RESET` of one setting (folded name). `value_ok` is false when the value
    /// itself is suspect (a `search_path` that puts `pg_catalog` after another schema).
    Setting { name: String, value_ok: bool },
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, `SET TRANSACTION`, ...
    Transaction,
    /// Driver and pool housekeeping that only drops session state: `DISCARD ALL`,
    /// `DEALLOCATE [ALL]`, `CLOSE ALL`, `UNLISTEN *`, `RESET ALL` (psycopg, SQLAlchemy
    /// and pools send them on every checkout).
    Housekeeping,
    /// Anything else: never noise.
    Other,
}

/// Whether a classified statement only reads catalog state. `set_config_ok` is true when
/// every `set_config` call in it was vetted with [`set_config_call_ok`].
pub fn judge(shape: &Shape, objects: &[Object], functions: &[String], set_config_ok: bool) -> bool {
    match shape {
        Shape::Show | Shape::Transaction | Shape::Housekeeping => objects.is_empty(),
        Shape::Setting { name, value_ok } => *value_ok && is_tool_setting(name),
        Shape::ReadQuery => {
            objects.iter().all(|o| is_catalog_relation(&o.name))
                && functions.iter().all(|f| {
                    if is_set_config(f) {
                        set_config_ok
                    } else {
                        is_allowed_function(f)
                    }
                })
        }
        Shape::Other => false,
    }
}

/// True for relations in `pg_catalog` or `information_schema` (rendered names, as in
/// [`Object::name`]): qualified, or unqualified from an explicit list of real catalog
/// relations. Relations holding secrets or table data are never catalog noise.
pub fn is_catalog_relation(name: &str) -> bool {
    let parts = names::split(name);
    match parts.as_slice() {
        [schema, rel] if schema == "information_schema" => !rel.is_empty(),
        [schema, rel] if schema == "pg_catalog" => {
            !rel.is_empty() && !SENSITIVE.contains(&rel.as_str())
        }
        [rel] => CATALOG_RELATIONS.contains(&rel.as_str()),
        _ => false,
    }
}

/// True for functions (rendered, lower-cased names) that only read: explicit names,
/// bare or `pg_catalog.`-qualified, and information_schema's helpers qualified. Prefixes
/// are never trusted: a user can create `public.pg_get_anything`.
pub fn is_allowed_function(name: &str) -> bool {
    let parts = names::split(name);
    match parts.as_slice() {
        [f] => ALLOWED_FUNCTIONS.contains(&f.as_str()),
        [schema, f] if schema == "pg_catalog" => ALLOWED_FUNCTIONS.contains(&f.as_str()),
        [schema, f] if schema == "information_schema" => {
            INFORMATION_SCHEMA_FUNCTIONS.contains(&f.as_str())
        }
        _ => false,
    }
}

/// The unqualified function names [`is_allowed_function`] trusts: a same-named user
/// function shadows them, so sessions check the database for these.
pub fn allowed_function_names() -> &'static [&'static str] {
    ALLOWED_FUNCTIONS
}

/// True for session settings drivers and tools set on their own (folded name).
pub fn is_tool_setting(name: &str) -> bool {
    TOOL_SETTINGS.contains(&name)
}

/// Whether `set_config(name, value, ...)` with these literal arguments only sets a tool
/// setting. `None` means the argument was not a string literal: then it is not vetted.
pub fn set_config_call_ok(name: Option<&str>, value: Option<&str>) -> bool {
    let Some(name) = name else { return false };
    let name = name.trim().to_ascii_lowercase();
    if name == "search_path" {
        return value.is_some_and(search_path_literal_ok);
    }
    is_tool_setting(&name)
}

/// Whether a `search_path` keeps `pg_catalog` first when it names it at all (folded
/// schema names, in order). Listing it later lets a user schema shadow catalog names.
pub fn search_path_ok<S: AsRef<str>>(schemas: &[S]) -> bool {
    match schemas.iter().position(|s| s.as_ref() == "pg_catalog") {
        None | Some(0) => true,
        Some(_) => false,
    }
}

/// [`search_path_ok`] for a search path given as one string (`'"$user", public'`).
pub fn search_path_literal_ok(value: &str) -> bool {
    let schemas: Vec<String> = value
        .split(',')
        .map(|s| {
            let s = s.trim();
            match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(q) => q.to_string(),
                None => s.to_ascii_lowercase(),
            }
        })
        .collect();
    search_path_ok(&schemas)
}

/// True for `set_config` and `pg_catalog.set_config`.
pub fn is_set_config(name: &str) -> bool {
    name == "set_config" || name == "pg_catalog.set_config"
}

/// Catalog relations that expose secrets or table contents: reading them is an event.
#[rustfmt::skip]
const SENSITIVE: &[&str] = &[
    "pg_authid", "pg_shadow", "pg_user_mapping", "pg_user_mappings", "pg_statistic",
    "pg_statistic_ext_data", "pg_stats", "pg_stats_ext", "pg_stats_ext_exprs",
    "pg_largeobject", "pg_subscription", "pg_hba_file_rules", "pg_ident_file_mappings",
    "pg_file_settings",
];

/// Real `pg_catalog` tables and views (PostgreSQL 13-17), minus [`SENSITIVE`].
#[rustfmt::skip]
const CATALOG_RELATIONS: &[&str] = &[
    "pg_aggregate", "pg_am", "pg_amop", "pg_amproc", "pg_attrdef", "pg_attribute",
    "pg_auth_members", "pg_available_extension_versions", "pg_available_extensions",
    "pg_backend_memory_contexts", "pg_cast", "pg_class", "pg_collation", "pg_config",
    "pg_constraint", "pg_conversion", "pg_cursors", "pg_database", "pg_db_role_setting",
    "pg_default_acl", "pg_depend", "pg_description", "pg_enum", "pg_event_trigger",
    "pg_extension", "pg_foreign_data_wrapper", "pg_foreign_server", "pg_foreign_table",
    "pg_group", "pg_index", "pg_indexes", "pg_inherits", "pg_init_privs", "pg_language",
    "pg_largeobject_metadata", "pg_locks", "pg_matviews", "pg_namespace", "pg_opclass",
    "pg_operator", "pg_opfamily", "pg_parameter_acl", "pg_partitioned_table", "pg_policies",
    "pg_policy", "pg_prepared_statements", "pg_prepared_xacts", "pg_proc", "pg_publication",
    "pg_publication_namespace", "pg_publication_rel", "pg_publication_tables", "pg_range",
    "pg_replication_origin", "pg_replication_origin_status", "pg_replication_slots",
    "pg_rewrite", "pg_roles", "pg_rules", "pg_seclabel", "pg_seclabels", "pg_sequence",
    "pg_sequences", "pg_settings", "pg_shdepend", "pg_shdescription",
    "pg_shmem_allocations", "pg_shseclabel", "pg_stat_activity", "pg_stat_all_indexes",
    "pg_stat_all_tables", "pg_stat_archiver", "pg_stat_bgwriter", "pg_stat_checkpointer",
    "pg_stat_database", "pg_stat_database_conflicts", "pg_stat_gssapi", "pg_stat_io",
    "pg_stat_progress_analyze", "pg_stat_progress_basebackup", "pg_stat_progress_cluster",
    "pg_stat_progress_copy", "pg_stat_progress_create_index", "pg_stat_progress_vacuum",
    "pg_stat_recovery_prefetch", "pg_stat_replication", "pg_stat_replication_slots",
    "pg_stat_slru", "pg_stat_ssl", "pg_stat_subscription", "pg_stat_subscription_stats",
    "pg_stat_sys_indexes", "pg_stat_sys_tables", "pg_stat_user_functions",
    "pg_stat_user_indexes", "pg_stat_user_tables", "pg_stat_wal", "pg_stat_wal_receiver",
    "pg_stat_xact_all_tables", "pg_stat_xact_sys_tables", "pg_stat_xact_user_functions",
    "pg_stat_xact_user_tables", "pg_statio_all_indexes", "pg_statio_all_sequences",
    "pg_statio_all_tables", "pg_statio_sys_indexes", "pg_statio_sys_sequences",
    "pg_statio_sys_tables", "pg_statio_user_indexes", "pg_statio_user_sequences",
    "pg_statio_user_tables", "pg_statistic_ext", "pg_subscription_rel", "pg_tables",
    "pg_tablespace", "pg_timezone_abbrevs", "pg_timezone_names", "pg_transform",
    "pg_trigger", "pg_ts_config", "pg_ts_config_map", "pg_ts_dict", "pg_ts_parser",
    "pg_ts_template", "pg_type", "pg_user", "pg_views", "pg_wait_events",
];

/// Functions that only read: introspection, formatting, pure helpers and aggregates.
/// Not here on purpose: file and large-object access, signalling backends, dblink,
/// sequence functions, advisory locks, `txid_current` (assigns an xid), `pg_sleep`.
#[rustfmt::skip]
const ALLOWED_FUNCTIONS: &[&str] = &[
    // pg_get_* introspection
    "pg_get_constraintdef", "pg_get_expr", "pg_get_function_arguments",
    "pg_get_function_identity_arguments", "pg_get_function_result",
    "pg_get_function_sqlbody", "pg_get_functiondef", "pg_get_indexdef", "pg_get_keywords",
    "pg_get_partkeydef", "pg_get_partition_constraintdef", "pg_get_ruledef",
    "pg_get_serial_sequence", "pg_get_statisticsobjdef", "pg_get_statisticsobjdef_columns",
    "pg_get_triggerdef", "pg_get_userbyid", "pg_get_viewdef", "pg_get_publication_tables",
    // visibility and privileges
    "pg_table_is_visible", "pg_type_is_visible", "pg_function_is_visible",
    "pg_operator_is_visible", "pg_opclass_is_visible", "pg_opfamily_is_visible",
    "pg_collation_is_visible", "pg_conversion_is_visible", "pg_statistics_obj_is_visible",
    "pg_ts_config_is_visible", "pg_ts_dict_is_visible", "pg_ts_parser_is_visible",
    "pg_ts_template_is_visible", "has_any_column_privilege", "has_column_privilege",
    "has_database_privilege", "has_foreign_data_wrapper_privilege",
    "has_function_privilege", "has_language_privilege", "has_parameter_privilege",
    "has_schema_privilege", "has_sequence_privilege", "has_server_privilege",
    "has_table_privilege", "has_tablespace_privilege", "has_type_privilege", "pg_has_role",
    "row_security_active",
    // descriptions and formatting
    "obj_description", "col_description", "shobj_description", "format_type",
    "pg_encoding_to_char", "pg_char_to_encoding", "pg_encoding_max_length",
    "pg_tablespace_location", "pg_size_pretty", "pg_relation_size",
    "pg_total_relation_size", "pg_table_size", "pg_indexes_size", "pg_database_size",
    "pg_tablespace_size", "pg_relation_filenode", "pg_relation_is_publishable",
    "pg_column_size", "pg_index_column_has_property", "pg_index_has_property",
    "pg_indexam_has_property", "pg_indexam_progress_phasename", "pg_partition_root",
    "pg_partition_tree", "pg_partition_ancestors", "pg_describe_object",
    "pg_identify_object", "pg_identify_object_as_address", "pg_typeof",
    "pg_collation_actual_version", "pg_options_to_table", "pg_get_catalog_foreign_keys",
    "pg_sequence_parameters",
    // session and server facts
    "current_schema", "current_schemas", "current_database", "current_catalog",
    "current_user", "current_role", "session_user", "user", "current_setting", "version",
    "pg_backend_pid", "pg_postmaster_start_time", "pg_conf_load_time", "pg_is_in_recovery",
    // pgAdmin's recovery probe
    "pg_is_wal_replay_paused",
    // asyncpg's pool reset: releases only the session's own advisory locks
    "pg_advisory_unlock_all",
    "inet_server_addr", "inet_server_port", "inet_client_addr", "inet_client_port",
    "pg_my_temp_schema", "pg_is_other_temp_schema", "pg_jit_available",
    "pg_listening_channels", "pg_trigger_depth", "now", "statement_timestamp",
    "transaction_timestamp", "clock_timestamp", "timeofday", "current_date", "current_time",
    "current_timestamp", "localtime", "localtimestamp", "to_regclass", "to_regtype",
    "to_regproc", "to_regprocedure", "to_regnamespace", "to_regrole", "to_regoper",
    "to_regoperator", "to_regcollation", "to_regtypemod", "pg_stat_get_numscans",
    // pure helpers
    "array_to_string", "array_agg", "array_length", "array_upper", "array_lower",
    "array_position", "array_positions", "array_ndims", "array_dims", "array_cat",
    "array_append", "array_prepend", "array_remove", "array_replace", "cardinality",
    "unnest", "generate_series", "generate_subscripts", "string_agg", "string_to_array",
    "count", "min", "max", "sum", "avg", "bool_and", "bool_or", "every", "coalesce",
    "nullif", "greatest", "least", "concat", "concat_ws", "lower", "upper", "initcap",
    "substring", "substr", "position", "strpos", "length", "char_length", "octet_length",
    "left", "right", "lpad", "rpad", "ltrim", "rtrim", "btrim", "trim", "replace",
    "split_part", "starts_with", "translate", "repeat", "reverse", "format", "quote_ident",
    "quote_literal", "quote_nullable", "regexp_replace", "regexp_match", "regexp_matches",
    "regexp_split_to_array", "regexp_split_to_table", "regexp_like", "row_number", "rank",
    "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value",
    "last_value", "nth_value", "abs", "round", "trunc", "ceil", "ceiling", "floor", "mod",
    "date_trunc", "date_part", "extract", "age", "to_char", "to_number", "to_date",
    "to_timestamp", "encode", "md5", "pg_size_bytes", "int4", "int8", "text", "bool", "oid",
    "json_agg", "jsonb_agg", "json_build_object", "jsonb_build_object", "json_object_agg",
    "jsonb_object_agg", "row_to_json", "array_to_json", "to_json", "to_jsonb",
];

/// information_schema's SQL helper functions (pgJDBC calls `_pg_expandarray`).
#[rustfmt::skip]
const INFORMATION_SCHEMA_FUNCTIONS: &[&str] = &[
    "_pg_expandarray", "_pg_index_position", "_pg_truetypid", "_pg_truetypmod",
    "_pg_char_max_length", "_pg_char_octet_length", "_pg_numeric_precision",
    "_pg_numeric_precision_radix", "_pg_numeric_scale", "_pg_datetime_precision",
    "_pg_interval_type",
];

/// Settings drivers and tools set for themselves (folded names). Not here on purpose:
/// `role`, `session_authorization`, and anything that changes what a session may do.
#[rustfmt::skip]
const TOOL_SETTINGS: &[&str] = &[
    "application_name", "bytea_output", "client_encoding", "client_min_messages",
    "datestyle", "default_transaction_isolation", "default_transaction_read_only",
    "extra_float_digits", "idle_in_transaction_session_timeout", "idle_session_timeout",
    "intervalstyle", "jit", "lc_messages", "lc_monetary", "lc_numeric", "lc_time",
    "lock_timeout", "quote_all_identifiers", "search_path", "standard_conforming_strings",
    "statement_timeout", "timezone", "transaction_isolation", "transaction_read_only",
    "xmloption",
];

#[cfg(test)]
#[path = "noise_tests.rs"]
mod tests;
