-- Corpus for tests/audit_pgaudit.rs: pgvigil's statement events judged against pgAudit.
--
-- Format. Blocks are separated by lines starting with `--- `; the word after it says
-- what the block is, the rest of the line is a description for readers:
--   `--- setup`  a psql script run directly on the cluster as the superuser before the
--                proxy session (not compared);
--   `--- next`   one corpus statement, sent through the proxy as one simple Query
--                (exactly the block's text, trimmed), in one session as `postgres` on
--                database `app`, in file order; every statement must succeed unless the
--                block says otherwise.
-- Inside a block, lines starting with `--@` are directives, removed before sending:
--   `--@ error SQLSTATE`  the statement fails with that SQLSTATE (pgAudit logs nothing
--                         for it; the proxy must log outcome "error" with the SQLSTATE);
--   `--@ stdin LINE`      a line of COPY ... FROM STDIN data (repeatable);
--   `--@ silent REASON`   the statement succeeds but pgAudit logs nothing for it
--                         (excluded from the rates).
-- `@DATA_DIR@` is replaced by the cluster's data directory (server-side COPY files).
-- Statements carry no trailing semicolon; `$$` bodies may span lines.

--- setup: base schema, run directly (the pgaudit extension gives DDL lines their objects)
CREATE EXTENSION pgaudit;
CREATE SCHEMA sales;
CREATE TABLE sales.orders (id int PRIMARY KEY, customer_id int NOT NULL, amount numeric(10,2), status text DEFAULT 'new');
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
CREATE TABLE items (id serial PRIMARY KEY, order_id int, sku text, qty int);
CREATE TABLE app_log (id bigserial PRIMARY KEY, msg text, at timestamptz DEFAULT now());
CREATE TABLE parent_t (id int, v text);
CREATE TABLE child_t () INHERITS (parent_t);
CREATE TABLE t_copy (id int, name text, region text);
INSERT INTO customers VALUES (1, 'ann', 'eu'), (2, 'bob', 'us'), (3, 'cy', 'eu'), (4, 'dan', 'apac');
INSERT INTO sales.orders VALUES (1, 1, 10.50, 'new'), (2, 1, 99.00, 'paid'), (3, 2, 5.25, 'new'), (4, 3, 42.00, 'paid');
INSERT INTO items (order_id, sku, qty) VALUES (1, 'A-1', 1), (1, 'B-2', 0), (2, 'C-3', 7), (3, 'A-1', 200);
INSERT INTO parent_t VALUES (1, 'p');
INSERT INTO child_t VALUES (2, 'c');
-- Issue 14's shapes: a role literally named current_user (rolenames.sql has one), roles
-- to rename, group and own, a foreign server for user mappings, tables for column DDL,
-- triggers, policies and MERGE.
CREATE ROLE "current_user";
CREATE ROLE regress_r1;
CREATE ROLE regress_r2;
CREATE ROLE regress_grp;
CREATE ROLE regress_m1;
CREATE ROLE regress_m2;
CREATE FOREIGN DATA WRAPPER regress_fdw;
CREATE SERVER regress_srv FOREIGN DATA WRAPPER regress_fdw;
CREATE TABLE col_t (a int, b text, c int, d int);
CREATE TABLE trg_t (id int, v text);
CREATE FUNCTION trg_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TABLE merge_t (id int, v text);
CREATE TABLE merge_src (id int, v text, del bool);
INSERT INTO merge_t VALUES (1, 'a'), (2, 'b');
INSERT INTO merge_src VALUES (1, 'a2', false), (2, 'b2', true), (3, 'c', false);

--- next: DDL: schema
CREATE SCHEMA reporting
--- next
CREATE TABLE reporting.daily (day date, total numeric)
--- next
CREATE TABLE t_plain (a int, b text)
--- next
CREATE TABLE t_drop1 (a int)
--- next
CREATE TABLE t_drop2 (a int)
--- next
CREATE UNLOGGED TABLE t_unlogged (x int)
--- next
CREATE TABLE "Mixed Case" (id int, "Value" text)
--- next
CREATE INDEX orders_customer_idx ON sales.orders (customer_id)
--- next
CREATE UNIQUE INDEX customers_name_idx ON customers (name)
--- next
CREATE VIEW eu_customers AS SELECT id, name FROM customers WHERE region = 'eu'
--- next
CREATE OR REPLACE VIEW eu_customers AS SELECT id, name, region FROM customers WHERE region = 'eu'
--- next
CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(amount) AS total FROM sales.orders GROUP BY customer_id
--- next
CREATE SEQUENCE invoice_seq START 100
--- next
ALTER SEQUENCE invoice_seq RESTART WITH 200
--- next
CREATE FUNCTION add_one(i int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT i + 1 $$
--- next: a plpgsql function that writes; its body has a semicolon and a newline
CREATE FUNCTION log_msg(m text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO app_log (msg) VALUES (m);
END
$$
--- next
CREATE PROCEDURE close_order(oid int) LANGUAGE plpgsql AS $body$
BEGIN
  UPDATE sales.orders SET status = 'closed' WHERE id = oid;
END
$body$
--- next
CREATE TYPE pair AS (x int, y int)
--- next
CREATE DOMAIN posint AS int CHECK (VALUE > 0)
--- next
CREATE EXTENSION tsm_system_rows
--- next
ALTER TABLE t_plain ADD COLUMN c timestamptz
--- next
ALTER TABLE t_plain RENAME COLUMN c TO created_at
--- next
ALTER TABLE sales.orders ADD CONSTRAINT orders_amount_chk CHECK (amount >= 0)
--- next
ALTER TABLE t_plain OWNER TO app_user
--- next
ALTER DATABASE app SET work_mem = '8MB'
--- next
ALTER SYSTEM SET log_min_duration_statement = '5s'
--- next
ALTER SYSTEM RESET log_min_duration_statement
--- next
ALTER FUNCTION add_one(int) STABLE
--- next
ALTER VIEW eu_customers RENAME TO eu_clients
--- next
ALTER INDEX sales.orders_customer_idx RENAME TO orders_cust_idx
--- next
ALTER SCHEMA reporting OWNER TO app_user
--- next
ALTER SEQUENCE invoice_seq OWNED BY NONE
--- next
COMMENT ON TABLE customers IS 'people who buy'
--- next
COMMENT ON COLUMN customers.region IS 'sales region'
--- next: CREATE TABLE AS and SELECT INTO both create and read
CREATE TABLE orders_copy AS SELECT * FROM sales.orders WHERE amount > 10
--- next
SELECT id, name INTO customers_eu FROM customers WHERE region = 'eu'
--- next
CREATE TABLE t_like (LIKE customers)
--- next
DROP TABLE t_drop1, t_drop2
--- next
DROP TABLE reporting.daily
--- next
DROP SCHEMA reporting
--- next
DROP INDEX customers_name_idx
--- next
DROP TYPE pair
--- next
DROP DOMAIN posint

--- next: READ
SELECT * FROM customers
--- next
SELECT 1
--- next
SELECT now()
--- next
SELECT c.name, o.amount FROM customers c JOIN sales.orders o ON o.customer_id = c.id WHERE o.amount > 5
--- next
SELECT name FROM customers WHERE id IN (SELECT customer_id FROM sales.orders WHERE status = 'paid')
--- next
SELECT id FROM customers UNION SELECT customer_id FROM sales.orders
--- next
SELECT id FROM customers EXCEPT SELECT customer_id FROM sales.orders
--- next
WITH big AS (SELECT * FROM sales.orders WHERE amount > 10) SELECT count(*) FROM big
--- next
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT sum(i) FROM n
--- next
SELECT * FROM customers c LEFT JOIN LATERAL (SELECT o.amount FROM sales.orders o WHERE o.customer_id = c.id ORDER BY o.amount DESC LIMIT 1) top ON true
--- next
SELECT region, count(*) FROM customers GROUP BY region HAVING count(*) > 1 ORDER BY 2 DESC
--- next
SELECT EXISTS (SELECT 1 FROM items WHERE qty > 5)
--- next
SELECT "Value" FROM "Mixed Case"
--- next
SELECT * FROM public."Mixed Case" WHERE id = 1
--- next
select * from SALES.Orders where ID = 2
--- next
TABLE customers
--- next
SELECT * FROM ONLY parent_t
--- next
SELECT * FROM child_t
--- next
SELECT count(*) FROM pg_class
--- next
SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'customers'
--- next
SELECT * FROM information_schema.tables WHERE table_schema = 'sales'
--- next
SELECT * FROM sales.orders FOR UPDATE
--- next
SELECT * FROM customers FOR SHARE
--- next
SELECT * FROM order_totals
--- next
SELECT * FROM customers_eu
--- next
SELECT * FROM customers TABLESAMPLE SYSTEM_ROWS(2)
--- next
VALUES (1, 'a'), (2, 'b')
--- next
SELECT nextval('invoice_seq')
--- next
SELECT * FROM invoice_seq
--- next
SELECT pg_sleep(0)
--- next
SELECT current_user, session_user
--- next
SELECT * FROM generate_series(1, 3) AS g(i)

--- next: WRITE
INSERT INTO customers VALUES (10, 'dee', 'apac')
--- next
INSERT INTO customers (id, name, region) VALUES (11, 'eve', 'us'), (12, 'fay', 'eu')
--- next
INSERT INTO customers VALUES (10, 'dee2', 'apac') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name
--- next
INSERT INTO customers VALUES (10, 'x', 'y') ON CONFLICT DO NOTHING
--- next
INSERT INTO sales.orders (id, customer_id, amount) SELECT id + 100, id, 5 FROM customers WHERE id < 5
--- next
INSERT INTO items (order_id, sku, qty) VALUES (1, 'D-4', 3) RETURNING id
--- next
INSERT INTO "Mixed Case" VALUES (1, 'one'), (2, 'two')
--- next
UPDATE "Mixed Case" SET "Value" = 'uno' WHERE id = 1
--- next
UPDATE customers SET region = 'emea' WHERE region = 'eu'
--- next
UPDATE sales.orders o SET status = 'vip' FROM customers c WHERE c.id = o.customer_id AND c.region = 'emea'
--- next
UPDATE items SET qty = qty + 1 WHERE order_id IN (SELECT id FROM sales.orders WHERE status = 'vip')
--- next
DELETE FROM items WHERE qty = 0
--- next
DELETE FROM sales.orders o USING customers c WHERE o.customer_id = c.id AND c.name = 'nobody'
--- next
WITH d AS (DELETE FROM items WHERE qty > 100 RETURNING *) SELECT count(*) FROM d
--- next
WITH u AS (UPDATE customers SET name = upper(name) WHERE id = 1 RETURNING id) SELECT * FROM u
--- next
WITH n AS (INSERT INTO app_log (msg) VALUES ('cte') RETURNING id) SELECT id FROM n
--- next
MERGE INTO customers c USING (VALUES (20, 'gus', 'us')) AS v(id, name, region) ON c.id = v.id WHEN MATCHED THEN UPDATE SET name = v.name WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.name, v.region)
--- next
MERGE INTO t_copy t USING customers c ON t.id = c.id WHEN NOT MATCHED THEN INSERT VALUES (c.id, c.name, c.region)
--- next
INSERT INTO parent_t VALUES (3, 'q')
--- next
UPDATE parent_t SET v = 'pp' WHERE id = 1
--- next
DELETE FROM ONLY parent_t WHERE id = 3
--- next
TRUNCATE t_plain
--- next
TRUNCATE TABLE orders_copy, customers_eu
--- next: EXPLAIN
EXPLAIN SELECT * FROM customers WHERE id = 1
--- next
EXPLAIN (COSTS OFF) SELECT c.name FROM customers c JOIN sales.orders o ON o.customer_id = c.id
--- next
EXPLAIN ANALYZE SELECT * FROM sales.orders
--- next
EXPLAIN ANALYZE DELETE FROM items WHERE qty = 12345
--- next
EXPLAIN UPDATE customers SET name = 'z' WHERE id = 2

--- next: COPY
COPY customers TO STDOUT
--- next
COPY (SELECT * FROM sales.orders WHERE amount > 1) TO STDOUT WITH (FORMAT csv)
--- next
COPY customers (id, name) TO STDOUT WITH (FORMAT csv, HEADER)
--- next
--@ stdin 30,hal,us
--@ stdin 31,ivy,eu
COPY customers (id, name, region) FROM STDIN WITH (FORMAT csv)
--- next
COPY customers TO '@DATA_DIR@/pgvigil_corpus_customers.csv' WITH (FORMAT csv)
--- next
COPY t_copy FROM '@DATA_DIR@/pgvigil_corpus_customers.csv' WITH (FORMAT csv)

--- next: FUNCTION
SELECT add_one(41)
--- next
SELECT log_msg('hello')
--- next
SELECT id, add_one(id) FROM customers WHERE id < 3
--- next
CALL close_order(1)
--- next
DO $$ BEGIN PERFORM 1; END $$
--- next
DO $$
DECLARE n int;
BEGIN
  SELECT count(*) INTO n FROM customers;
  INSERT INTO app_log (msg) VALUES ('customers: ' || n);
END
$$
--- next
DO LANGUAGE plpgsql $do$ BEGIN RAISE NOTICE 'hi'; END $do$
--- next
SELECT set_config('application_name', 'pgaudit_corpus', false)

--- next: ROLE
CREATE ROLE auditor_r NOLOGIN
--- next
CREATE ROLE web_r LOGIN PASSWORD 'webpass1'
--- next
CREATE USER report_u WITH ENCRYPTED PASSWORD 'rep0rt'
--- next
ALTER ROLE web_r WITH ENCRYPTED PASSWORD 'webpass2'
--- next
ALTER USER report_u PASSWORD 'rep0rt2' VALID UNTIL '2030-01-01'
--- next
ALTER ROLE report_u SET search_path = sales, public
--- next
ALTER ROLE auditor_r RENAME TO auditors
--- next
GRANT SELECT ON customers TO auditors
--- next
GRANT SELECT, INSERT ON sales.orders TO web_r
--- next
GRANT ALL ON ALL TABLES IN SCHEMA sales TO auditors
--- next
GRANT USAGE ON SCHEMA sales TO web_r
--- next
GRANT EXECUTE ON FUNCTION log_msg(text) TO web_r
--- next
GRANT auditors TO report_u
--- next
GRANT auditors TO web_r WITH ADMIN OPTION
--- next
REVOKE INSERT ON sales.orders FROM web_r
--- next
REVOKE auditors FROM report_u
--- next
ALTER DEFAULT PRIVILEGES IN SCHEMA sales GRANT SELECT ON TABLES TO auditors
--- next
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC
--- next
REASSIGN OWNED BY report_u TO postgres
--- next
CREATE TABLE web_owned (a int)
--- next
ALTER TABLE web_owned OWNER TO web_r
--- next: web_r owns a table and holds privileges: pgAudit logs DROP OWNED and the REVOKEs
DROP OWNED BY web_r
--- next
DROP ROLE web_r
--- next
DROP USER report_u

--- next: role keywords (CURRENT_USER, SESSION_USER, CURRENT_ROLE, ALL, PUBLIC) against a role named "current_user"
ALTER ROLE CURRENT_USER SET work_mem = '4MB'
--- next
ALTER ROLE "current_user" SET work_mem = '4MB'
--- next
ALTER ROLE SESSION_USER RESET work_mem
--- next
ALTER USER CURRENT_ROLE SET statement_timeout = '1min'
--- next
ALTER ROLE CURRENT_USER RESET statement_timeout
--- next
ALTER ROLE current_user WITH CONNECTION LIMIT -1
--- next
ALTER ROLE ALL SET maintenance_work_mem = '32MB'
--- next
ALTER ROLE ALL IN DATABASE app RESET maintenance_work_mem
--- next
ALTER ROLE ALL RESET maintenance_work_mem
--- next
ALTER ROLE regress_r1 RENAME TO regress_r1b
--- next
ALTER USER regress_r1b RENAME TO regress_r1
--- next
CREATE ROLE regress_m3 NOLOGIN IN ROLE regress_grp ADMIN CURRENT_USER
--- next
ALTER GROUP regress_grp ADD USER regress_m1, regress_m2
--- next
ALTER GROUP regress_grp DROP USER regress_m2
--- next
ALTER GROUP regress_grp ADD USER CURRENT_USER
--- next
ALTER GROUP regress_grp DROP USER CURRENT_USER
--- next
GRANT regress_grp TO CURRENT_USER
--- next
REVOKE regress_grp FROM CURRENT_USER
--- next
GRANT regress_grp TO "current_user", regress_r2 GRANTED BY CURRENT_USER
--- next
REVOKE regress_grp FROM "current_user"
--- next
GRANT SELECT ON col_t TO CURRENT_USER, PUBLIC, "current_user"
--- next
REVOKE SELECT ON col_t FROM PUBLIC
--- next: a role named like the keyword, upper-case: an attacker's decoy must not read as the keyword
CREATE ROLE "CURRENT_USER"
--- next
GRANT regress_grp TO "CURRENT_USER"
--- next
ALTER ROLE "CURRENT_USER" RENAME TO "SESSION_USER"
--- next
DROP ROLE "SESSION_USER"
--- next
ALTER TABLE col_t OWNER TO "current_user"
--- next
ALTER TABLE col_t OWNER TO CURRENT_USER
--- next
ALTER TABLE col_t OWNER TO SESSION_USER
--- next
ALTER SCHEMA sales OWNER TO CURRENT_ROLE
--- next
ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER GRANT SELECT ON TABLES TO PUBLIC
--- next
ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER REVOKE SELECT ON TABLES FROM PUBLIC

--- next: user mappings (FOR CURRENT_USER, USER, PUBLIC, a role named "current_user")
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_srv OPTIONS (user 'remote', password 'secret1')
--- next
CREATE USER MAPPING FOR PUBLIC SERVER regress_srv
--- next
CREATE USER MAPPING FOR "current_user" SERVER regress_srv
--- next
CREATE USER MAPPING IF NOT EXISTS FOR regress_r2 SERVER regress_srv
--- next
ALTER USER MAPPING FOR CURRENT_USER SERVER regress_srv OPTIONS (SET password 'secret2')
--- next
ALTER USER MAPPING FOR PUBLIC SERVER regress_srv OPTIONS (ADD user 'anyone')
--- next
ALTER USER MAPPING FOR USER SERVER regress_srv OPTIONS (DROP user)
--- next
DROP USER MAPPING FOR CURRENT_USER SERVER regress_srv
--- next
DROP USER MAPPING IF EXISTS FOR "current_user" SERVER regress_srv
--- next
DROP USER MAPPING FOR PUBLIC SERVER regress_srv
--- next
DROP USER MAPPING FOR regress_r2 SERVER regress_srv

--- next: REASSIGN OWNED and DROP OWNED of several roles
CREATE TABLE owned_a (a int)
--- next
ALTER TABLE owned_a OWNER TO regress_r1
--- next
GRANT SELECT ON customers TO regress_r1
--- next
REASSIGN OWNED BY regress_r1 TO regress_r2
--- next: (a DROP OWNED that drops nothing and only revokes is logged by pgAudit as ROLE,REVOKE alone, a class no statement text can give: not in the corpus)
DROP OWNED BY regress_r1, regress_r2 CASCADE

--- next: column DDL
ALTER TABLE col_t ADD COLUMN e int
--- next
ALTER TABLE col_t DROP COLUMN e
--- next
ALTER TABLE col_t RENAME COLUMN d TO d2
--- next
ALTER TABLE col_t RENAME c TO c2
--- next
ALTER TABLE col_t ALTER COLUMN b TYPE varchar(20)
--- next
ALTER TABLE col_t ALTER b SET DEFAULT 'x'
--- next
ALTER TABLE col_t ALTER COLUMN a SET NOT NULL
--- next
ALTER TABLE col_t DROP COLUMN c2, DROP COLUMN d2
--- next
ALTER TABLE IF EXISTS sales.orders ALTER COLUMN status SET DEFAULT 'open'
--- next
ALTER TABLE ONLY col_t DROP COLUMN IF EXISTS nosuch

--- next: triggers, policies, rules
CREATE TRIGGER trg_ins BEFORE INSERT ON trg_t FOR EACH ROW EXECUTE FUNCTION trg_f()
--- next
CREATE OR REPLACE TRIGGER trg_ins BEFORE INSERT OR UPDATE ON public.trg_t FOR EACH ROW EXECUTE FUNCTION trg_f()
--- next
ALTER TRIGGER trg_ins ON trg_t RENAME TO trg_ins2
--- next
ALTER TABLE trg_t DISABLE TRIGGER trg_ins2
--- next
DROP TRIGGER trg_ins2 ON trg_t
--- next
DROP TRIGGER IF EXISTS nosuch ON trg_t
--- next
ALTER TABLE trg_t ENABLE ROW LEVEL SECURITY
--- next
CREATE POLICY pol_all ON trg_t USING (id > 0)
--- next
CREATE POLICY pol_sel ON trg_t FOR SELECT TO CURRENT_USER, PUBLIC USING (true)
--- next
ALTER POLICY pol_sel ON trg_t TO PUBLIC
--- next
ALTER POLICY pol_all ON trg_t RENAME TO pol_all2
--- next
DROP POLICY pol_all2 ON trg_t
--- next
DROP POLICY IF EXISTS pol_sel ON trg_t
--- next
CREATE RULE rule_nothing AS ON DELETE TO trg_t DO INSTEAD NOTHING
--- next
DROP RULE rule_nothing ON trg_t

--- next: MERGE variants
MERGE INTO merge_t t USING merge_src s ON t.id = s.id WHEN MATCHED AND s.del THEN DELETE WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)
--- next
MERGE INTO merge_t t USING (SELECT id, v FROM merge_src WHERE id < 10) s ON t.id = s.id WHEN MATCHED THEN DO NOTHING WHEN NOT MATCHED THEN INSERT DEFAULT VALUES
--- next
WITH src AS (SELECT id, v FROM merge_src) MERGE INTO merge_t t USING src ON t.id = src.id WHEN MATCHED THEN UPDATE SET v = src.v || '!'
--- next
MERGE INTO ONLY merge_t AS t USING merge_src AS s ON t.id = s.id WHEN NOT MATCHED AND s.v IS NOT NULL THEN INSERT VALUES (s.id, s.v)

--- next: COPY options
COPY customers (id, name) TO STDOUT (FORMAT text, DELIMITER '|', NULL 'N')
--- next
COPY (SELECT id FROM customers ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER true, FORCE_QUOTE *)
--- next
COPY customers TO STDOUT WITH CSV HEADER
--- next
COPY BINARY customers TO STDOUT
--- next
--@ stdin 40|jo
COPY t_copy (id, name) FROM STDIN WITH (FORMAT text, DELIMITER '|', FREEZE false)
--- next
--@ stdin 41,kim,
COPY t_copy FROM STDIN (FORMAT csv, NULL '', FORCE_NULL (region))

--- next: prepared statements run by EXECUTE
PREPARE q3 (int) AS UPDATE customers SET name = name WHERE id = $1
--- next
EXECUTE q3(1)
--- next
PREPARE q4 AS DELETE FROM app_log WHERE id < 0
--- next
EXECUTE q4
--- next
PREPARE q5 (int) AS SELECT add_one($1)
--- next
EXECUTE q5(1)
--- next
EXPLAIN EXECUTE q3(2)
--- next
DEALLOCATE PREPARE q3

--- next: shapes from PostgreSQL's regression SQL (rolenames, privileges, create_function_sql, truncate, delete, prepare)
CREATE ROLE "session_user"
--- next
ALTER ROLE "session_user" WITH CONNECTION LIMIT 3
--- next
ALTER USER "session_user" RENAME TO "Session_User"
--- next
CREATE SCHEMA regress_s AUTHORIZATION regress_r2
--- next
CREATE SCHEMA AUTHORIZATION regress_grp
--- next
CREATE TABLE regress_s.atest1 (a int, b text)
--- next
GRANT SELECT (a), UPDATE (b) ON regress_s.atest1 TO regress_m1
--- next
GRANT USAGE ON SCHEMA regress_s TO PUBLIC
--- next
GRANT ALL PRIVILEGES ON regress_s.atest1 TO regress_m2 WITH GRANT OPTION
--- next
REVOKE GRANT OPTION FOR ALL ON regress_s.atest1 FROM regress_m2 CASCADE
--- next
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO regress_m1
--- next
REVOKE EXECUTE ON FUNCTION trg_f() FROM PUBLIC
--- next
GRANT CREATE ON DATABASE app TO regress_grp
--- next
REVOKE CREATE ON DATABASE app FROM regress_grp
--- next
GRANT USAGE ON FOREIGN SERVER regress_srv TO regress_m1
--- next
CREATE SEQUENCE regress_s.seq1
--- next
GRANT USAGE, SELECT ON SEQUENCE regress_s.seq1 TO regress_m1
--- next
SELECT has_table_privilege('regress_m1', 'regress_s.atest1', 'SELECT')
--- next
SET ROLE regress_m1
--- next
SELECT a FROM regress_s.atest1
--- next
RESET ROLE
--- next
REVOKE ALL ON regress_s.atest1 FROM regress_m1, regress_m2
--- next
CREATE FUNCTION regress_s.f_return(int) RETURNS int LANGUAGE sql RETURN $1 * 2
--- next
CREATE OR REPLACE FUNCTION regress_s.f_return(int) RETURNS int LANGUAGE sql IMMUTABLE RETURN $1 * 3
--- next
SELECT regress_s.f_return(2)
--- next
ALTER FUNCTION regress_s.f_return(int) RENAME TO f_ret
--- next
ALTER FUNCTION regress_s.f_ret(int) OWNER TO regress_r2
--- next
ALTER FUNCTION regress_s.f_ret(int) SET search_path = public
--- next
DROP FUNCTION IF EXISTS regress_s.f_ret(int)
--- next
TRUNCATE ONLY merge_t RESTART IDENTITY
--- next
TRUNCATE TABLE merge_src CONTINUE IDENTITY RESTRICT
--- next
DELETE FROM t_copy WHERE id IN (SELECT id FROM customers WHERE region = 'nowhere') RETURNING id
--- next
DELETE FROM t_copy AS tc WHERE tc.id > 1000
--- next
PREPARE q6 (text) AS SELECT count(*) FROM customers WHERE name = $1
--- next
EXECUTE q6('ann')
--- next
PREPARE q7 AS INSERT INTO t_copy VALUES (99, 'z', 'z') RETURNING id
--- next
EXECUTE q7
--- next
DEALLOCATE q6
--- next
COMMENT ON SCHEMA regress_s IS 'regression shapes'
--- next
ALTER TABLE regress_s.atest1 RENAME TO atest2
--- next: (a sequence OWNED BY a column would be dropped with its table, and pgAudit names it: the text cannot)
DROP SEQUENCE regress_s.seq1
--- next
DROP TABLE regress_s.atest2
--- next
ALTER SCHEMA regress_s RENAME TO regress_s2
--- next
DROP SCHEMA regress_s2
--- next
DROP SCHEMA regress_grp

--- next: MISC and MISC_SET
BEGIN
--- next
SELECT * FROM customers WHERE id = 2
--- next
SAVEPOINT sp1
--- next
UPDATE customers SET name = 'bobby' WHERE id = 2
--- next
ROLLBACK TO SAVEPOINT sp1
--- next
RELEASE SAVEPOINT sp1
--- next
LOCK TABLE customers IN SHARE MODE
--- next
SET LOCAL statement_timeout = '5s'
--- next
DECLARE c1 CURSOR FOR SELECT * FROM customers ORDER BY id
--- next
FETCH 2 FROM c1
--- next
MOVE NEXT IN c1
--- next
CLOSE c1
--- next
COMMIT
--- next
START TRANSACTION ISOLATION LEVEL REPEATABLE READ
--- next
SELECT count(*) FROM sales.orders
--- next
ROLLBACK
--- next
PREPARE q1 (int) AS SELECT * FROM customers WHERE id = $1
--- next
EXECUTE q1(1)
--- next
DEALLOCATE q1
--- next
PREPARE q2 (int, text) AS INSERT INTO app_log (msg) VALUES ($2 || $1)
--- next
EXECUTE q2(7, 'seven')
--- next
DEALLOCATE ALL
--- next
LISTEN chan1
--- next
NOTIFY chan1, 'payload'
--- next
SELECT pg_notify('chan1', 'again')
--- next
UNLISTEN *
--- next
SET search_path = public, sales
--- next
SET work_mem TO '16MB'
--- next
SET TIME ZONE 'UTC'
--- next
SHOW work_mem
--- next
SHOW ALL
--- next
RESET work_mem
--- next
RESET ALL
--- next
SET ROLE app_user
--- next
SELECT current_user
--- next
RESET ROLE
--- next: a role named current_user, quoted; the keyword is no role name for SET ROLE (see failures)
SET ROLE "current_user"
--- next
SELECT current_user
--- next
RESET ROLE
--- next
SET SESSION AUTHORIZATION app_user
--- next
RESET SESSION AUTHORIZATION
--- next
DISCARD ALL
--- next
VACUUM customers
--- next
VACUUM (VERBOSE, ANALYZE) sales.orders
--- next
ANALYZE customers
--- next
ANALYZE
--- next
REFRESH MATERIALIZED VIEW order_totals
--- next
CLUSTER sales.orders USING orders_pkey
--- next
REINDEX TABLE customers
--- next
REINDEX INDEX sales.orders_cust_idx
--- next
CHECKPOINT

--- next: failures (excluded from the agreement rates; the proxy must log outcome error)
--@ error 42P01
SELECT * FROM missing_table
--- next
--@ error 42P01
INSERT INTO missing_t VALUES (1)
--- next
--@ error 42P01
UPDATE no_such_table SET a = 1
--- next
--@ error 42P01
DROP TABLE missing_t
--- next
--@ error 42703
SELECT no_such_column FROM customers
--- next
--@ error 42601
SET ROLE current_user
--- next
--@ error 42601
SET SESSION AUTHORIZATION SESSION_USER
--- next
--@ error 22023
DROP ROLE CURRENT_USER
--- next
BEGIN
--- next
--@ error 42P01
DELETE FROM missing_t
--- next
--@ error 25P02
SELECT 1
--- next
--@ silent pgAudit skips statements in an aborted transaction, ROLLBACK included
ROLLBACK

--- next: cleanup DDL
DROP VIEW eu_clients
--- next
DROP MATERIALIZED VIEW order_totals
--- next
DROP FUNCTION add_one(int)
--- next
DROP PROCEDURE close_order(int)
--- next
DROP SEQUENCE invoice_seq
--- next
DROP TABLE t_like, t_unlogged
--- next
DROP EXTENSION tsm_system_rows
