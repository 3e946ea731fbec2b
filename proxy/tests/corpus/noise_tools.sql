-- Catalog and setup SQL that GUI tools and drivers send on their own, written in the
-- style of pgAdmin 4, DBeaver, DataGrip (navigator trees, dashboards, recovery probes),
-- psycopg 2/3, asyncpg, SQLAlchemy 2 reflection and node-postgres, with a human's own
-- statements in between. tests/audit_noise.rs runs every entry through the proxy (one
-- simple Query each, in one psql session, against the objects of its SETUP) and checks
-- that every `-- noise:` entry is logged `noise: true` and every `-- user:` entry
-- `noise: false`.
--
-- Format: entries are separated by blank lines; an entry's first line is its marker
-- (`-- noise: <tool> <what>` or `-- user: <what>`), the rest its SQL (no final `;`).

-- noise: pgAdmin recovery probe (check_recovery)
SELECT CASE WHEN usesuper THEN pg_catalog.pg_is_in_recovery() ELSE NULL END AS inrecovery,
       CASE WHEN usesuper AND pg_catalog.pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE NULL END AS isreplaypaused
FROM pg_catalog.pg_user WHERE usename = current_user

-- noise: pgAdmin server version and user
SELECT version(), current_user, pg_catalog.pg_backend_pid() AS pid

-- noise: pgAdmin database nodes
SELECT db.oid AS did, db.datname AS name, ta.spcname AS spcname, db.datallowconn,
       pg_catalog.has_database_privilege(db.oid, 'CREATE') AS cancreate, datdba AS owner,
       db.datistemplate, pg_catalog.pg_encoding_to_char(db.encoding) AS encoding
FROM pg_catalog.pg_database db
LEFT OUTER JOIN pg_catalog.pg_tablespace ta ON db.dattablespace = ta.oid
WHERE db.oid > 16383::OID OR db.datname IN ('postgres', 'edb')
ORDER BY datname

-- noise: pgAdmin schema nodes
SELECT nsp.oid, nsp.nspname AS name,
       pg_catalog.has_schema_privilege(nsp.oid, 'CREATE') AS can_create,
       pg_catalog.has_schema_privilege(nsp.oid, 'USAGE') AS has_usage, des.description
FROM pg_catalog.pg_namespace nsp
LEFT OUTER JOIN pg_catalog.pg_description des
  ON (des.objoid = nsp.oid AND des.classoid = 'pg_namespace'::regclass)
WHERE NOT ((nsp.nspname = 'pg_catalog') OR (nsp.nspname LIKE 'pg\_%') OR (nsp.nspname = 'information_schema'))
ORDER BY nspname

-- noise: pgAdmin table nodes
SELECT rel.oid, rel.relname AS name,
       (SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgrelid = rel.oid AND tgisinternal = FALSE) AS triggercount,
       (SELECT count(*) FROM pg_catalog.pg_inherits WHERE inhrelid = rel.oid) AS is_inherits,
       rel.relpersistence = 'u' AS is_unlogged,
       pg_catalog.obj_description(rel.oid, 'pg_class') AS description
FROM pg_catalog.pg_class rel
WHERE rel.relkind IN ('r', 's', 't', 'p')
  AND rel.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public')
ORDER BY rel.relname

-- noise: pgAdmin dashboard session counts
SELECT (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = (SELECT datname FROM pg_catalog.pg_database WHERE oid = 1)) AS "Total",
       (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE state = 'active') AS "Active",
       (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE state = 'idle') AS "Idle"

-- user: a human reads a table between two tool queries
SELECT * FROM app_table ORDER BY id

-- noise: DBeaver schemas
SELECT n.oid, n.*, d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = n.oid AND d.objsubid = 0 AND d.classoid = 'pg_namespace'::regclass
ORDER BY nspname

-- noise: DBeaver tables of a schema
SELECT c.oid, c.*, d.description,
       pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS partition_expr,
       pg_catalog.pg_get_partkeydef(c.oid) AS partition_key
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = c.oid AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass
WHERE c.relnamespace = 2200 AND c.relkind NOT IN ('i', 'I', 'c')

-- noise: DBeaver columns
SELECT c.relname, a.*, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) AS def_value, dsc.description
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid = c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid = ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid = dsc.objoid AND a.attnum = dsc.objsubid)
WHERE NOT a.attisdropped AND c.relkind NOT IN ('i', 'I', 'c') AND c.oid = 'app_table'::regclass
ORDER BY a.attnum

-- noise: DBeaver databases
SELECT db.oid, db.* FROM pg_catalog.pg_database db
WHERE datallowconn AND NOT datistemplate OR db.datname = 'app'
ORDER BY db.datname

-- noise: DBeaver keywords
SELECT string_agg(word, ',') FROM pg_catalog.pg_get_keywords() WHERE word <> ALL ('{a,abs,absolute,action,ada,add,admin,after,all}'::text[])

-- noise: DBeaver session
SELECT current_schema(), session_user

-- noise: DBeaver search path
SHOW search_path

-- noise: DBeaver data types
SELECT t.oid, t.*, c.relkind, d.description
FROM pg_catalog.pg_type t
LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid = t.typelem
LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid = d.objoid
WHERE t.typname IS NOT NULL AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C')

-- user: a human changes data
UPDATE app_table SET v = 'dbeaver' WHERE id = 1

-- noise: DataGrip current database and schemas
select current_database() as a, current_schemas(false) as b

-- noise: DataGrip databases
select N.oid::bigint as id, datname as name, D.description, datistemplate as is_template,
       datallowconn as allow_connections, pg_catalog.pg_get_userbyid(N.datdba) as "owner"
from pg_catalog.pg_database N
  left join pg_catalog.pg_shdescription D on N.oid = D.objoid
order by case when datname = pg_catalog.current_database() then -1::bigint else N.oid::bigint end

-- noise: DataGrip roles
select R.oid::bigint as role_id, rolname as role_name, rolsuper as is_super, rolinherit as is_inherit,
       rolcreaterole as can_createrole, rolcreatedb as can_createdb, rolcanlogin as can_login,
       rolreplication as is_replication, rolconnlimit as conn_limit, rolvaliduntil as valid_until,
       rolbypassrls as bypass_rls, rolconfig as config, D.description
from pg_catalog.pg_roles R
  left join pg_catalog.pg_shdescription D on D.objoid = R.oid

-- noise: DataGrip schemas
select N.oid::bigint as id, N.xmin as state_number, nspname as name, D.description,
       pg_catalog.pg_get_userbyid(N.nspowner) as "owner"
from pg_catalog.pg_namespace N
  left join pg_catalog.pg_description D on N.oid = D.objoid
order by case when nspname = pg_catalog.current_schema() then -1::bigint else N.oid::bigint end

-- noise: DataGrip routines
select P.oid as id, P.proname as name, pg_catalog.pg_get_function_arguments(P.oid) as arguments_def,
       pg_catalog.pg_get_function_result(P.oid) as result_def, P.prokind as kind
from pg_catalog.pg_proc P
where P.pronamespace = (select oid from pg_catalog.pg_namespace where nspname = 'public')

-- noise: DataGrip server version probe
select version()

-- user: a human calls a procedure
CALL app_proc()

-- noise: psycopg 3 TypeInfo.fetch
SELECT typname AS name, oid, typarray AS array_oid, oid::regtype::text AS regtype, typdelim AS delimiter
FROM pg_type t WHERE t.oid = to_regtype('mood') ORDER BY t.oid

-- noise: psycopg 3 EnumInfo.fetch
SELECT name, oid, array_oid, array_agg(label) AS labels
FROM (SELECT t.typname AS name, t.oid AS oid, t.typarray AS array_oid, e.enumlabel AS label
      FROM pg_type t LEFT JOIN pg_enum e ON e.enumtypid = t.oid
      WHERE t.oid = to_regtype('mood') ORDER BY e.enumsortorder) x
GROUP BY name, oid, array_oid

-- noise: psycopg2 / SQLAlchemy dialect initialisation
select pg_catalog.version()

-- noise: SQLAlchemy current schema
select current_schema()

-- noise: SQLAlchemy isolation level
show transaction isolation level

-- noise: SQLAlchemy standard_conforming_strings
show standard_conforming_strings

-- noise: SQLAlchemy 2 get_table_names
SELECT pg_catalog.pg_class.relname
FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace
WHERE pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p']) AND pg_catalog.pg_class.relpersistence != 't'
  AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'

-- noise: SQLAlchemy 2 has_table
SELECT pg_catalog.pg_class.relname
FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace
WHERE pg_catalog.pg_class.relname = 'app_table' AND pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p', 'f', 'v', 'm'])
  AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'

-- noise: SQLAlchemy 2 get_multi_columns
SELECT pg_catalog.pg_class.relname AS table_name, pg_catalog.pg_attribute.attname AS name,
       pg_catalog.format_type(pg_catalog.pg_attribute.atttypid, pg_catalog.pg_attribute.atttypmod) AS format_type,
       (SELECT pg_catalog.pg_get_expr(pg_catalog.pg_attrdef.adbin, pg_catalog.pg_attrdef.adrelid)
        FROM pg_catalog.pg_attrdef
        WHERE pg_catalog.pg_attrdef.adrelid = pg_catalog.pg_attribute.attrelid
          AND pg_catalog.pg_attrdef.adnum = pg_catalog.pg_attribute.attnum AND pg_catalog.pg_attribute.atthasdef) AS "default",
       pg_catalog.pg_attribute.attnotnull AS not_null, pg_catalog.pg_description.description AS comment,
       pg_catalog.pg_attribute.attgenerated AS generated,
       (SELECT json_build_object('always', pg_catalog.pg_attribute.attidentity = 'a', 'start', pg_catalog.pg_sequence.seqstart)
        FROM pg_catalog.pg_sequence
        WHERE pg_catalog.pg_attribute.attidentity != ''
          AND pg_catalog.pg_sequence.seqrelid = CAST(CAST(pg_catalog.pg_get_serial_sequence(CAST(CAST(pg_catalog.pg_attribute.attrelid AS REGCLASS) AS TEXT), pg_catalog.pg_attribute.attname) AS REGCLASS) AS OID)) AS identity_options
FROM pg_catalog.pg_class
LEFT OUTER JOIN pg_catalog.pg_attribute ON pg_catalog.pg_class.oid = pg_catalog.pg_attribute.attrelid
  AND pg_catalog.pg_attribute.attnum > 0 AND NOT pg_catalog.pg_attribute.attisdropped
LEFT OUTER JOIN pg_catalog.pg_description ON pg_catalog.pg_description.objoid = pg_catalog.pg_attribute.attrelid
  AND pg_catalog.pg_description.objsubid = pg_catalog.pg_attribute.attnum
JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace
WHERE pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p', 'f', 'v', 'm'])
  AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid)
  AND pg_catalog.pg_namespace.nspname != 'pg_catalog'
  AND pg_catalog.pg_class.relname IN ('app_table')
ORDER BY pg_catalog.pg_class.relname, pg_catalog.pg_attribute.attnum

-- noise: SQLAlchemy 2 get_multi_pk_constraint
SELECT attr.conrelid, array_agg(CAST(attr.attname AS TEXT) ORDER BY attr.ord) AS cols, attr.conname,
       min(attr.description) AS description
FROM (SELECT con.conrelid AS conrelid, con.conname AS conname, con.description AS description,
             pg_catalog.pg_attribute.attname AS attname, con.ord AS ord
      FROM pg_catalog.pg_attribute
      JOIN (SELECT pg_catalog.pg_constraint.conrelid AS conrelid, pg_catalog.pg_constraint.conname AS conname,
                   unnest(pg_catalog.pg_constraint.conkey) AS attnum,
                   generate_subscripts(pg_catalog.pg_constraint.conkey, 1) AS ord,
                   pg_catalog.pg_description.description AS description
            FROM pg_catalog.pg_constraint
            LEFT OUTER JOIN pg_catalog.pg_description ON pg_catalog.pg_description.objoid = pg_catalog.pg_constraint.oid
            WHERE pg_catalog.pg_constraint.contype = 'p' AND pg_catalog.pg_constraint.conrelid IN (SELECT 'app_table'::regclass::oid)) AS con
        ON pg_catalog.pg_attribute.attnum = con.attnum AND pg_catalog.pg_attribute.attrelid = con.conrelid) AS attr
GROUP BY attr.conrelid, attr.conname
ORDER BY attr.conrelid, attr.conname

-- user: a human deletes a row
DELETE FROM app_table WHERE v = 'no such row'

-- noise: asyncpg type introspection (recursive)
WITH RECURSIVE typeinfo_tree(oid, ns, name, kind, basetype, elemtype, depth) AS (
    SELECT ti.oid, ti.typnamespace, ti.typname, ti.typtype, ti.typbasetype, ti.typelem, 0
    FROM pg_catalog.pg_type ti WHERE ti.oid = any('{16,23,25}'::oid[])
  UNION ALL
    SELECT ti.oid, ti.typnamespace, ti.typname, ti.typtype, ti.typbasetype, ti.typelem, tt.depth + 1
    FROM pg_catalog.pg_type ti, typeinfo_tree tt
    WHERE (tt.elemtype IS NOT NULL AND ti.oid = tt.elemtype) AND tt.depth < 5
)
SELECT DISTINCT *, basetype::regtype::text AS basetype_name, elemtype::regtype::text AS elemtype_name
FROM typeinfo_tree ORDER BY depth DESC

-- noise: asyncpg pool reset (unlock)
SELECT pg_advisory_unlock_all()

-- noise: asyncpg pool reset (cursors)
CLOSE ALL

-- noise: asyncpg pool reset (listeners)
UNLISTEN *

-- noise: asyncpg pool reset (settings)
RESET ALL

-- noise: psycopg / SQLAlchemy pool checkout
DISCARD ALL

-- noise: psycopg prepared statement cleanup
DEALLOCATE ALL

-- noise: node-postgres pool health check
SELECT NOW()

-- noise: node-postgres / many ORMs: server settings
SELECT current_setting('server_version_num')::int AS v

-- user: a human reads a secret catalog
SELECT rolname, rolpassword FROM pg_authid WHERE rolname = 'postgres'

-- user: a human's statement that fails
SELECT 1/0

-- user: a human prepares and runs a write
PREPARE noise_del AS DELETE FROM app_table WHERE v = 'gone'

-- user: the write through EXECUTE
EXECUTE noise_del
