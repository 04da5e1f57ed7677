#!/usr/bin/env python3
"""Writes a realistic sqitch project of 100 changes for `scripts/bench` (section
migrate, part `real`), and the SQL that loads the data it works on.

Usage: gen-sqitch-real.py DIR MB PSQL

DIR gets sqitch.conf, sqitch.plan and deploy/, revert/, verify/ in the layout
`sqitch add` makes (deploy and revert scripts in BEGIN/COMMIT, verify scripts
in BEGIN/ROLLBACK, some with several blocks and SET LOCAL), and setup.sql.

setup.sql builds what the application's database already holds before this
plan: the schema `shop` with seven tables and about MB megabytes of rows
(customers, orders and events hold most of it). Both tools then deploy the
same plan onto a copy of that database, so neither spends its time loading
data, and the plan acts on data as a real project's does:

- roles created under guards (`\\gexec` of a `format(…) WHERE NOT EXISTS`,
  and `DO` blocks), role membership, GRANT/REVOKE, ALTER DEFAULT PRIVILEGES;
- schemas, enum and composite types, domains, new tables (some seeded with a
  few rows), indexes, comments, columns added to the loaded tables;
- SQL and PL/pgSQL functions, triggers, row-level security and policies,
  views;
- psql variables: `:"schema"`, `:'reader'`, … from sqitch.conf
  `[deploy.variables]`, `:'audit_cutoff'` from `--set`, and `\\set` in the
  scripts;
- destructive changes on loaded tables: DROP COLUMN (addresses), DELETE of
  rows (audit_log), UPDATE of rows (products), DROP TABLE (legacy_sessions).
  Their revert scripts do what a sqitch project can: put the column or the
  table back, empty; the rows are gone.

Prints "key<TAB>value" lines: the number of changes and what setup.sql loads.
"""

import os
import sys

PROJECT = "shop"
PLANNER = "Bench <bench@example.com>"
VARIABLES = {
    "schema": "shop",
    "reader": "shop_reader",
    "writer": "shop_writer",
}
# Set on the command line of both tools (`--set`), not in sqitch.conf.
SET = {"audit_cutoff": "2023-01-01"}

# The loaded tables: share of MB, bytes per row (heap, TOAST and primary
# key, as measured on PostgreSQL 15), and their definition and generator.
TABLES = [
    ("customers", 0.15, 205,
     "id bigint PRIMARY KEY, email text NOT NULL, full_name text NOT NULL, country text NOT NULL,\n"
     "    notes text, created_at timestamptz NOT NULL",
     "i, 'user' || i || '@example.com', initcap(md5(i::text)), (ARRAY['DE','FR','US','ES','IT'])[1 + i % 5],\n"
     "    md5((i * 7)::text) || md5((i * 11)::text), timestamptz '2019-01-01' + i * interval '1 minute'"),
    ("orders", 0.30, 170,
     "id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, total numeric(12, 2) NOT NULL,\n"
     "    placed_at timestamptz NOT NULL, note text",
     "i, 1 + i % {customers}, (ARRAY['new','paid','shipped','done'])[1 + i % 4], (i % 100000) / 100.0,\n"
     "    timestamptz '2020-01-01' + i * interval '20 seconds', md5(i::text) || md5((i * 3)::text)"),
    ("events", 0.45, 270,
     "id bigint PRIMARY KEY, customer_id bigint NOT NULL, kind text NOT NULL, created_at timestamptz NOT NULL,\n"
     "    body text NOT NULL",
     "i, 1 + i % {customers}, (ARRAY['view','click','cart','buy'])[1 + i % 4],\n"
     "    timestamptz '2021-01-01' + i * interval '10 seconds',\n"
     "    md5(i::text) || md5((i * 5)::text) || md5((i * 9)::text) || md5((i * 13)::text)\n"
     "        || md5((i * 17)::text) || md5((i * 19)::text)"),
    ("products", 0.02, 180,
     "id bigint PRIMARY KEY, sku text NOT NULL, title text NOT NULL, price numeric(10, 2) NOT NULL,\n"
     "    description text",
     "i, CASE WHEN i % 10 = 0 THEN 'SKU-' ELSE 'sku-' END || i, initcap(md5(i::text)), (i % 5000) / 10.0,\n"
     "    md5((i * 2)::text) || md5((i * 3)::text) || md5((i * 4)::text)"),
    ("addresses", 0.02, 165,
     "id bigint PRIMARY KEY, customer_id bigint NOT NULL, line1 text NOT NULL, city text NOT NULL,\n"
     "    legacy_geo text, zip text NOT NULL",
     "i, 1 + i % {customers}, i || ' ' || md5(i::text), (ARRAY['Berlin','Paris','Austin','Madrid'])[1 + i % 4],\n"
     "    md5((i * 7)::text) || md5((i * 8)::text), lpad((i % 99999)::text, 5, '0')"),
    ("audit_log", 0.02, 130,
     "id bigint PRIMARY KEY, logged_at timestamptz NOT NULL, actor text NOT NULL, detail text NOT NULL",
     "i, timestamptz '2021-01-01' + i * {audit_step}, 'user' || (i % 1000),\n"
     "    md5(i::text) || md5((i * 6)::text)"),
    ("legacy_sessions", 0.01, 120,
     "id bigint PRIMARY KEY, customer_id bigint NOT NULL, token text NOT NULL, expires_at timestamptz NOT NULL",
     "i, 1 + i % {customers}, md5(i::text) || md5((i * 5)::text), timestamptz '2022-01-01' + i * interval '1 hour'"),
]
FOREIGN_KEYS = [("orders", "customer_id"), ("addresses", "customer_id"), ("legacy_sessions", "customer_id")]


def setup_sql(mb):
    rows = {name: max(100, int(mb * 1e6 * share / width)) for name, share, width, _, _ in TABLES}
    out = ["CREATE SCHEMA shop;"]
    for name, _share, _width, cols, gen in TABLES:
        out.append(f"CREATE TABLE shop.{name} (\n    {cols}\n);")
        # The audit log spans four years, so the purge (cutoff 2023-01-01)
        # deletes about half of it.
        audit_step = f"interval '{4 * 365 * 86400 // rows['audit_log']} seconds'"
        out.append(f"INSERT INTO shop.{name}\nSELECT {gen.format(customers=rows['customers'], audit_step=audit_step)}\n"
                   f"FROM generate_series(1, {rows[name]}) i;")
    for table, col in FOREIGN_KEYS:
        out.append(f"ALTER TABLE shop.{table} ADD FOREIGN KEY ({col}) REFERENCES shop.customers (id);")
    out.append("VACUUM ANALYZE;")
    return "\n".join(out) + "\n", rows


class Plan:
    def __init__(self):
        self.changes = []  # (name, note, deploy, revert, verify)

    def add(self, name, note, deploy, revert, verify):
        assert all(c[0] != name for c in self.changes), name
        self.changes.append((name, note, deploy.strip(), revert.strip(), verify.strip()))


S = ':"schema"'


def role_changes(p):
    # Roles named by variables: created through \gexec, as psql can only
    # interpolate outside the dollar quotes of a DO block.
    for var, what in (("reader", "read-only"), ("writer", "read-write")):
        p.add(f"role_{var}", f"Creates the {what} role.",
              f"SELECT format('CREATE ROLE %I NOLOGIN', :'{var}')\n"
              f"WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'{var}')\\gexec",
              f'DROP ROLE IF EXISTS :"{var}";',
              f"SELECT 1 / count(*) FROM pg_catalog.pg_roles WHERE rolname = :'{var}';")
    # Fixed names: the DO-block guard most projects use.
    for role, opts in (("shop_auditor", "NOLOGIN"), ("shop_support", "NOLOGIN NOINHERIT")):
        p.add(f"role_{role.split('_')[1]}", f"Creates the role {role}.",
              f"DO $$\nBEGIN\n    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{role}') THEN\n"
              f"        CREATE ROLE {role} {opts};\n    END IF;\nEND\n$$;",
              f"DROP ROLE IF EXISTS {role};",
              f"SELECT 1 / count(*) FROM pg_catalog.pg_roles WHERE rolname = '{role}';")
    p.add("role_writer_reads", "The writer role can do what the reader can.",
          'GRANT :"reader" TO :"writer";', 'REVOKE :"reader" FROM :"writer";',
          "SELECT 1 / count(*) FROM pg_catalog.pg_auth_members m\n"
          "JOIN pg_catalog.pg_roles r ON r.oid = m.roleid WHERE r.rolname = :'reader';")
    p.add("role_support_audits", "Support staff read the audit trail.",
          "GRANT shop_auditor TO shop_support;", "REVOKE shop_auditor FROM shop_support;",
          "SELECT pg_catalog.pg_has_role('shop_support', 'shop_auditor', 'member');")


def schema_changes(p):
    for name, note in (("api", "functions and views for the web API"), ("reporting", "reporting views"),
                       ("audit", "the audit trail of the new tables")):
        p.add(f"schema_{name}", f"Adds the schema {name} for {note}.",
              f"CREATE SCHEMA {name};\nCOMMENT ON SCHEMA {name} IS 'Holds {note}.';",
              f"DROP SCHEMA {name};",
              f"SELECT pg_catalog.has_schema_privilege('{name}', 'usage');")
    p.add("grant_schema_usage", "The roles may use the application's schemas.",
          f'GRANT USAGE ON SCHEMA {S}, api, reporting TO :"reader", :"writer";\n'
          "GRANT USAGE ON SCHEMA audit TO shop_auditor;",
          f'REVOKE USAGE ON SCHEMA {S}, api, reporting FROM :"reader", :"writer";\n'
          "REVOKE USAGE ON SCHEMA audit FROM shop_auditor;",
          f"SELECT 1 / pg_catalog.has_schema_privilege(:'reader', :'schema', 'usage')::int;")
    p.add("grant_select_loaded", "The reader reads the loaded tables.",
          f'GRANT SELECT ON ALL TABLES IN SCHEMA {S} TO :"reader";',
          f'REVOKE SELECT ON ALL TABLES IN SCHEMA {S} FROM :"reader";',
          f"SELECT 1 / pg_catalog.has_table_privilege(:'reader', 'shop.orders', 'select')::int;")
    p.add("grant_write_orders", "The writer writes orders and customers.",
          f'GRANT INSERT, UPDATE, DELETE ON {S}.orders, {S}.customers TO :"writer";',
          f'REVOKE INSERT, UPDATE, DELETE ON {S}.orders, {S}.customers FROM :"writer";',
          "SELECT 1 / pg_catalog.has_table_privilege(:'writer', 'shop.orders', 'update')::int;")
    p.add("default_privileges_tables", "New tables are readable by the reader and writable by the writer.",
          f'ALTER DEFAULT PRIVILEGES IN SCHEMA {S} GRANT SELECT ON TABLES TO :"reader";\n'
          f'ALTER DEFAULT PRIVILEGES IN SCHEMA {S} GRANT INSERT, UPDATE, DELETE ON TABLES TO :"writer";\n'
          f'ALTER DEFAULT PRIVILEGES IN SCHEMA {S} GRANT USAGE ON SEQUENCES TO :"writer";',
          f'ALTER DEFAULT PRIVILEGES IN SCHEMA {S} REVOKE USAGE ON SEQUENCES FROM :"writer";\n'
          f'ALTER DEFAULT PRIVILEGES IN SCHEMA {S} REVOKE INSERT, UPDATE, DELETE ON TABLES FROM :"writer";\n'
          f'ALTER DEFAULT PRIVILEGES IN SCHEMA {S} REVOKE SELECT ON TABLES FROM :"reader";',
          "SELECT 1 / count(*) FROM pg_catalog.pg_default_acl d\n"
          "JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace WHERE n.nspname = :'schema';")
    p.add("default_privileges_functions", "The reader may run the API's functions.",
          'ALTER DEFAULT PRIVILEGES IN SCHEMA api GRANT EXECUTE ON FUNCTIONS TO :"reader";',
          'ALTER DEFAULT PRIVILEGES IN SCHEMA api REVOKE EXECUTE ON FUNCTIONS FROM :"reader";',
          "SELECT 1 / count(*) FROM pg_catalog.pg_default_acl d\n"
          "JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace WHERE n.nspname = 'api';")


def type_changes(p):
    p.add("type_order_status", "An enum for the status of orders.",
          f"CREATE TYPE {S}.order_status AS ENUM ('new', 'paid', 'shipped', 'done', 'cancelled');",
          f"DROP TYPE {S}.order_status;",
          "SELECT 'paid'::shop.order_status;")
    p.add("type_geo_point", "A composite type for coordinates.",
          f"CREATE TYPE {S}.geo_point AS (lat double precision, lon double precision);",
          f"DROP TYPE {S}.geo_point;",
          "SELECT ROW(1.0, 2.0)::shop.geo_point;")
    p.add("domain_email", "A domain for e-mail addresses.",
          f"CREATE DOMAIN {S}.email AS text CHECK (VALUE ~ '^[^@]+@[^@]+$');",
          f"DROP DOMAIN {S}.email;",
          "SELECT 'a@example.com'::shop.email;")
    p.add("domain_amount", "A domain for non-negative amounts of money.",
          f"CREATE DOMAIN {S}.amount AS numeric(12, 2) NOT NULL CHECK (VALUE >= 0);",
          f"DROP DOMAIN {S}.amount;",
          "SELECT 1.5::shop.amount;")


# New tables: name, columns, rows seeded (0: none), owner column for RLS.
NEW_TABLES = [
    ("tags", "id int PRIMARY KEY, label text NOT NULL UNIQUE", 8, None),
    ("order_tags", "order_id bigint NOT NULL REFERENCES shop.orders (id), tag_id int NOT NULL REFERENCES shop.tags (id),\n"
                   "    PRIMARY KEY (order_id, tag_id)", 0, None),
    ("coupons", "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, code text NOT NULL UNIQUE,\n"
                "    discount shop.amount, valid_until date", 5, None),
    ("refunds", "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
                "    order_id bigint NOT NULL REFERENCES shop.orders (id), amount shop.amount,\n"
                "    created_at timestamptz NOT NULL DEFAULT now()", 0, None),
    ("carts", "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
              "    customer_id bigint NOT NULL REFERENCES shop.customers (id), updated_at timestamptz NOT NULL DEFAULT now()",
     0, "customer_id"),
    ("cart_items", "cart_id bigint NOT NULL REFERENCES shop.carts (id) ON DELETE CASCADE,\n"
                   "    product_id bigint NOT NULL REFERENCES shop.products (id), quantity int NOT NULL CHECK (quantity > 0),\n"
                   "    PRIMARY KEY (cart_id, product_id)", 0, None),
    ("reviews", "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
                "    customer_id bigint NOT NULL REFERENCES shop.customers (id),\n"
                "    product_id bigint NOT NULL REFERENCES shop.products (id), stars int NOT NULL CHECK (stars BETWEEN 1 AND 5),\n"
                "    body text", 0, "customer_id"),
    ("wishlists", "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
                  "    customer_id bigint NOT NULL REFERENCES shop.customers (id), name text NOT NULL", 0, "customer_id"),
    ("shipments", "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
                  "    order_id bigint NOT NULL REFERENCES shop.orders (id), carrier text NOT NULL,\n"
                  "    location shop.geo_point, shipped_at timestamptz", 0, None),
    ("payment_methods", "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
                        "    customer_id bigint NOT NULL REFERENCES shop.customers (id), kind text NOT NULL", 0, "customer_id"),
    ("countries", "code text PRIMARY KEY, name text NOT NULL", 6, None),
    ("settings", "key text PRIMARY KEY, value text NOT NULL", 4, None),
]
SEEDS = {
    "tags": [(f"{k}", f"'tag-{k}'") for k in range(1, 9)],
    "coupons": [(None, f"'WELCOME{k}', {k}.00, date '2030-01-01'") for k in range(1, 6)],
    "countries": [(None, v) for v in ("'DE', 'Germany'", "'FR', 'France'", "'US', 'United States'",
                                      "'ES', 'Spain'", "'IT', 'Italy'", "'NL', 'Netherlands'")],
    "settings": [(None, v) for v in ("'currency', 'EUR'", "'tax', '0.19'", "'ship_days', '3'", "'support', 'on'")],
}
SEED_COLS = {"tags": "(id, label)", "coupons": "(code, discount, valid_until)", "countries": "(code, name)",
             "settings": "(key, value)"}


def table_changes(p):
    for name, cols, seeded, owner in NEW_TABLES:
        q = f"{S}.{name}"
        p.add(f"{name}_table", f"Creates the table shop.{name}.",
              f"CREATE TABLE {q} (\n    {cols}\n);", f"DROP TABLE {q};",
              f"SELECT * FROM shop.{name} WHERE false;")
        p.add(f"{name}_comment", f"Documents shop.{name}.",
              f"COMMENT ON TABLE {q} IS 'The {name.replace('_', ' ')} of the shop.';",
              f"COMMENT ON TABLE {q} IS NULL;",
              f"SELECT 1 / count(*) FROM pg_catalog.pg_description WHERE objoid = 'shop.{name}'::regclass;")
        if seeded:
            vals = ",\n    ".join(f"({k + ', ' if k else ''}{v})" for k, v in SEEDS[name])
            p.add(f"{name}_seed", f"Seeds shop.{name}.",
                  f"INSERT INTO {q} {SEED_COLS[name]} VALUES\n    {vals};",
                  f"DELETE FROM {q};",
                  f"SELECT 1 / count(*) FROM shop.{name};")
        if owner:
            p.add(f"{name}_rls", f"Customers see only their own shop.{name}.",
                  f"ALTER TABLE {q} ENABLE ROW LEVEL SECURITY;\n"
                  f"CREATE POLICY {name}_owner ON {q} FOR ALL TO :\"writer\"\n"
                  f"    USING ({owner} = current_setting('shop.customer_id', true)::bigint);\n"
                  f"CREATE POLICY {name}_read ON {q} FOR SELECT TO :\"reader\" USING (true);",
                  f"DROP POLICY {name}_read ON {q};\nDROP POLICY {name}_owner ON {q};\n"
                  f"ALTER TABLE {q} DISABLE ROW LEVEL SECURITY;",
                  f"SELECT 1 / count(*) FROM pg_catalog.pg_policies WHERE tablename = '{name}';")
    for name, col in (("order_tags", "tag_id"), ("refunds", "order_id"), ("carts", "customer_id"),
                      ("reviews", "product_id"), ("shipments", "order_id"), ("wishlists", "customer_id")):
        p.add(f"{name}_{col}_index", f"Indexes shop.{name}.{col}.",
              f"CREATE INDEX {name}_{col}_idx ON {S}.{name} ({col});",
              f"DROP INDEX {S}.{name}_{col}_idx;",
              f"SELECT 1 / count(*) FROM pg_catalog.pg_indexes WHERE indexname = '{name}_{col}_idx';")


def loaded_table_changes(p):
    for table, col, ddl in (("orders", "updated_at", "timestamptz NOT NULL DEFAULT now()"),
                            ("orders", "currency", "text NOT NULL DEFAULT 'EUR'"),
                            ("customers", "marketing_opt_in", "boolean NOT NULL DEFAULT false"),
                            ("customers", "updated_at", "timestamptz"),
                            ("events", "processed", "boolean NOT NULL DEFAULT false"),
                            ("products", "archived", "boolean NOT NULL DEFAULT false")):
        p.add(f"{table}_add_{col}", f"Adds shop.{table}.{col}.",
              f"ALTER TABLE {S}.{table} ADD COLUMN {col} {ddl};",
              f"ALTER TABLE {S}.{table} DROP COLUMN {col};",
              f"SELECT {col} FROM shop.{table} WHERE false;")
    for table in ("orders", "customers", "events"):
        p.add(f"{table}_rls", f"Row-level security on shop.{table}.",
              f"ALTER TABLE {S}.{table} ENABLE ROW LEVEL SECURITY;\n"
              f"CREATE POLICY {table}_read ON {S}.{table} FOR SELECT TO :\"reader\" USING (true);\n"
              f"CREATE POLICY {table}_write ON {S}.{table} FOR ALL TO :\"writer\"\n"
              f"    USING ({'id' if table == 'customers' else 'customer_id'} = "
              "current_setting('shop.customer_id', true)::bigint);",
              f"DROP POLICY {table}_write ON {S}.{table};\nDROP POLICY {table}_read ON {S}.{table};\n"
              f"ALTER TABLE {S}.{table} DISABLE ROW LEVEL SECURITY;",
              "BEGIN;\n"
              f"SELECT 1 / relrowsecurity::int FROM pg_catalog.pg_class WHERE oid = 'shop.{table}'::regclass;\n"
              "ROLLBACK;\n\nBEGIN;\nSET LOCAL shop.customer_id = '1';\n"
              f"SELECT 1 / count(*) FROM pg_catalog.pg_policies WHERE tablename = '{table}';")
    for table, note in (("orders", "Orders placed by customers; one row per order."),
                        ("customers", "Everyone who ever signed up."),
                        ("events", "Click stream, append-only.")):
        p.add(f"{table}_comment", f"Documents shop.{table}.",
              f"\\set note '{note}'\nCOMMENT ON TABLE {S}.{table} IS :'note';",
              f"COMMENT ON TABLE {S}.{table} IS NULL;",
              f"SELECT 1 / count(*) FROM pg_catalog.pg_description WHERE objoid = 'shop.{table}'::regclass;")
    p.add("audit_log_comment", "Documents the retention of shop.audit_log.",
          "\\set retention_days 365\n\\set note 'Kept for ' :retention_days ' days.'\n"
          f"COMMENT ON TABLE {S}.audit_log IS :'note';",
          f"COMMENT ON TABLE {S}.audit_log IS NULL;",
          "SELECT 1 / count(*) FROM pg_catalog.pg_description WHERE objoid = 'shop.audit_log'::regclass;")
    p.add("products_sku_index", "Indexes shop.products by SKU.",
          f"CREATE INDEX products_sku_idx ON {S}.products (sku);",
          f"DROP INDEX {S}.products_sku_idx;",
          "SELECT 1 / count(*) FROM pg_catalog.pg_indexes WHERE indexname = 'products_sku_idx';")


def function_changes(p):
    p.add("fn_set_updated_at", "A trigger function that stamps updated_at.",
          f"CREATE FUNCTION {S}.set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$\n"
          "BEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND\n$$;",
          f"DROP FUNCTION {S}.set_updated_at();",
          "SELECT 'shop.set_updated_at()'::regprocedure;")
    for table in ("orders", "customers", "carts"):
        p.add(f"{table}_updated_at_trigger", f"Stamps shop.{table}.updated_at on every update.",
              f"CREATE TRIGGER {table}_updated_at BEFORE UPDATE ON {S}.{table}\n"
              f"    FOR EACH ROW EXECUTE FUNCTION {S}.set_updated_at();",
              f"DROP TRIGGER {table}_updated_at ON {S}.{table};",
              f"SELECT 1 / count(*) FROM pg_catalog.pg_trigger WHERE tgname = '{table}_updated_at';")
    p.add("audit_changes_table", "The audit trail of coupons and settings.",
          "CREATE TABLE audit.changes (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
          "    table_name text NOT NULL, op text NOT NULL, row_data jsonb,\n"
          "    at timestamptz NOT NULL DEFAULT now()\n);\nGRANT SELECT ON audit.changes TO shop_auditor;",
          "DROP TABLE audit.changes;",
          "SELECT id, table_name, op, row_data, at FROM audit.changes WHERE false;")
    p.add("fn_audit_row", "A trigger function that records writes in audit.changes.",
          "CREATE FUNCTION audit.record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$\n"
          "BEGIN\n    INSERT INTO audit.changes (table_name, op, row_data)\n"
          "    VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(coalesce(NEW, OLD)));\n    RETURN coalesce(NEW, OLD);\n"
          "END\n$$;\nREVOKE ALL ON FUNCTION audit.record() FROM PUBLIC;",
          "DROP FUNCTION audit.record();",
          "SELECT 'audit.record()'::regprocedure;")
    for table in ("coupons", "settings"):
        p.add(f"{table}_audit_trigger", f"Audits the writes to shop.{table}.",
              f"CREATE TRIGGER {table}_audit AFTER INSERT OR UPDATE OR DELETE ON {S}.{table}\n"
              "    FOR EACH ROW EXECUTE FUNCTION audit.record();",
              f"DROP TRIGGER {table}_audit ON {S}.{table};",
              f"SELECT 1 / count(*) FROM pg_catalog.pg_trigger WHERE tgname = '{table}_audit';")
    p.add("fn_normalize_email", "An SQL function that normalizes e-mail addresses.",
          f"CREATE FUNCTION {S}.normalize_email(e text) RETURNS text\n"
          "    LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT lower(trim(e)) $$;",
          f"DROP FUNCTION {S}.normalize_email(text);",
          "SELECT 1 / (shop.normalize_email(' A@B.C ') = 'a@b.c')::int;")
    p.add("fn_customer_orders", "The API's list of a customer's orders.",
          "CREATE FUNCTION api.customer_orders(customer bigint)\n"
          "    RETURNS TABLE (id bigint, status text, total numeric, placed_at timestamptz)\n"
          "    LANGUAGE sql STABLE AS $$\n"
          "        SELECT o.id, o.status, o.total, o.placed_at FROM shop.orders o\n"
          "        WHERE o.customer_id = customer ORDER BY o.placed_at DESC\n    $$;",
          "DROP FUNCTION api.customer_orders(bigint);",
          "SELECT 'api.customer_orders(bigint)'::regprocedure;")
    p.add("fn_order_total", "The API's total of a customer's orders, in PL/pgSQL.",
          "CREATE FUNCTION api.order_total(customer bigint) RETURNS numeric\n"
          "    LANGUAGE plpgsql STABLE AS $$\nDECLARE\n    result numeric;\nBEGIN\n"
          "    SELECT coalesce(sum(total), 0) INTO result FROM shop.orders WHERE customer_id = customer;\n"
          "    RETURN result;\nEND\n$$;",
          "DROP FUNCTION api.order_total(bigint);",
          "SELECT 'api.order_total(bigint)'::regprocedure;")
    p.add("fn_place_order", "The API's procedure that places an order.",
          "CREATE PROCEDURE api.place_order(customer bigint, amount numeric)\n"
          "    LANGUAGE plpgsql AS $$\nBEGIN\n"
          "    INSERT INTO shop.orders (id, customer_id, status, total, placed_at)\n"
          "    SELECT coalesce(max(id), 0) + 1, customer, 'new', amount, now() FROM shop.orders;\nEND\n$$;",
          "DROP PROCEDURE api.place_order(bigint, numeric);",
          "SELECT 'api.place_order(bigint, numeric)'::regprocedure;")
    p.add("grant_api_functions", "The writer places orders.",
          'GRANT EXECUTE ON PROCEDURE api.place_order(bigint, numeric) TO :"writer";',
          'REVOKE EXECUTE ON PROCEDURE api.place_order(bigint, numeric) FROM :"writer";',
          "SELECT 1 / pg_catalog.has_function_privilege(:'writer', 'api.place_order(bigint, numeric)', 'execute')::int;")


def view_changes(p):
    views = [
        ("api", "orders_v", "SELECT id, customer_id, status, total, placed_at FROM shop.orders"),
        ("api", "customers_v", "SELECT id, email, full_name, country FROM shop.customers"),
        ("api", "products_v", "SELECT id, sku, title, price FROM shop.products WHERE NOT archived"),
        ("reporting", "orders_by_status", "SELECT status, count(*) AS n, sum(total) AS total FROM shop.orders GROUP BY status"),
        ("reporting", "customers_by_country", "SELECT country, count(*) AS n FROM shop.customers GROUP BY country"),
        ("reporting", "recent_events", "SELECT * FROM shop.events WHERE created_at > now() - interval '7 days'"),
    ]
    for schema, name, query in views:
        p.add(f"view_{name}", f"The view {schema}.{name}.",
              f"CREATE VIEW {schema}.{name} AS\n    {query};\n"
              f'GRANT SELECT ON {schema}.{name} TO :"reader";',
              f"DROP VIEW {schema}.{name};",
              f"SELECT * FROM {schema}.{name} WHERE false;")


def destructive_changes(p):
    p.add("addresses_drop_legacy_geo", "Drops shop.addresses.legacy_geo, replaced by shipments.location.",
          f"ALTER TABLE {S}.addresses DROP COLUMN legacy_geo;",
          f"ALTER TABLE {S}.addresses ADD COLUMN legacy_geo text;",
          "BEGIN;\nSELECT 1 / (count(*) = 0)::int FROM information_schema.columns\n"
          "WHERE table_schema = 'shop' AND table_name = 'addresses' AND column_name = 'legacy_geo';\nROLLBACK;")
    p.add("audit_log_purge", "Deletes the audit log entries older than the cutoff (--set audit_cutoff).",
          f"DELETE FROM {S}.audit_log WHERE logged_at < :'audit_cutoff'::timestamptz;",
          "-- The deleted entries cannot be brought back by a script.",
          "SELECT 1 / (count(*) = 0)::int FROM shop.audit_log WHERE logged_at < :'audit_cutoff'::timestamptz;")
    p.add("products_lowercase_sku", "SKUs are lower case from now on.",
          f"UPDATE {S}.products SET sku = lower(sku) WHERE sku <> lower(sku);",
          "-- Which SKUs were upper case is not known any more.",
          "SELECT 1 / (count(*) = 0)::int FROM shop.products WHERE sku <> lower(sku);")
    p.add("legacy_sessions_drop", "Drops shop.legacy_sessions: sessions live in the cache now.",
          f"DROP TABLE {S}.legacy_sessions;",
          f"CREATE TABLE {S}.legacy_sessions (\n"
          "    id bigint PRIMARY KEY,\n    customer_id bigint NOT NULL REFERENCES shop.customers (id),\n"
          "    token text NOT NULL,\n    expires_at timestamptz NOT NULL\n);\n"
          f'REVOKE INSERT, UPDATE, DELETE ON {S}.legacy_sessions FROM :"writer";',
          "SELECT 1 / (to_regclass('shop.legacy_sessions') IS NULL)::int;")
    # (The default privileges of default_privileges_tables gave the writer
    # more than it had on the dropped table.)
    p.add("tags_drop_unused", "Deletes the tags no order uses.",
          f"DELETE FROM {S}.tags WHERE id > 4 AND id NOT IN (SELECT tag_id FROM {S}.order_tags);",
          "-- The tags are seeded again by reverting tags_seed.",
          "SELECT count(*) FROM shop.tags;")


def build():
    p = Plan()
    role_changes(p)
    schema_changes(p)
    type_changes(p)
    table_changes(p)
    loaded_table_changes(p)
    function_changes(p)
    view_changes(p)
    destructive_changes(p)
    # Fill up to 100 with documentation of the loaded tables' columns.
    extra = [(t, c) for t, cs in (("orders", ["status", "total", "placed_at", "note"]),
                                 ("customers", ["email", "full_name", "country", "notes"]),
                                 ("events", ["kind", "body", "created_at"]),
                                 ("products", ["sku", "price"])) for c in cs]
    for table, col in extra:
        if len(p.changes) >= 100:
            break
        p.add(f"{table}_{col}_comment", f"Documents shop.{table}.{col}.",
              f"COMMENT ON COLUMN {S}.{table}.{col} IS 'The {col.replace('_', ' ')} of the {table[:-1]}.';",
              f"COMMENT ON COLUMN {S}.{table}.{col} IS NULL;",
              f"SELECT 1 / count(*) FROM pg_catalog.pg_description\n"
              f"WHERE objoid = 'shop.{table}'::regclass AND objsubid > 0;")
    return p


def write(top, p, psql):
    for sub in ("deploy", "revert", "verify"):
        os.makedirs(os.path.join(top, sub), exist_ok=True)
    with open(os.path.join(top, "sqitch.conf"), "w") as f:
        f.write("[core]\n\tengine = pg\n[engine \"pg\"]\n"
                f"\tclient = {psql}\n\tregistry = sqitch\n[deploy.variables]\n")
        for k, v in VARIABLES.items():
            f.write(f"\t{k} = {v}\n")
    with open(os.path.join(top, "sqitch.plan"), "w") as f:
        f.write(f"%syntax-version=1.0.0\n%project={PROJECT}\n\n")
        prev = None
        for k, (name, note, *_rest) in enumerate(p.changes):
            minute, second = divmod(k, 60)
            req = f" [{prev}]" if prev else ""
            f.write(f"{name}{req} 2024-01-01T10:{minute:02d}:{second:02d}Z {PLANNER} # {note}\n")
            prev = name
    prev = None
    for name, _note, deploy, revert, verify in p.changes:
        req = f"-- requires: {prev}\n" if prev else ""
        with open(os.path.join(top, "deploy", name + ".sql"), "w") as f:
            f.write(f"-- Deploy {PROJECT}:{name} to pg\n{req}\nBEGIN;\n\n{deploy}\n\nCOMMIT;\n")
        with open(os.path.join(top, "revert", name + ".sql"), "w") as f:
            f.write(f"-- Revert {PROJECT}:{name} from pg\n\nBEGIN;\n\n{revert}\n\nCOMMIT;\n")
        with open(os.path.join(top, "verify", name + ".sql"), "w") as f:
            if verify.startswith("BEGIN;"):
                # Several blocks, as some projects write them.
                f.write(f"-- Verify {PROJECT}:{name} on pg\n\n{verify}\n\nROLLBACK;\n"
                        if not verify.rstrip().endswith("ROLLBACK;") else
                        f"-- Verify {PROJECT}:{name} on pg\n\n{verify}\n")
            else:
                f.write(f"-- Verify {PROJECT}:{name} on pg\n\nBEGIN;\n\n{verify}\n\nROLLBACK;\n")
        prev = name


def write_floor(top, p):
    """floor-deploy.sql and floor-revert.sql: every deploy (revert) script in
    plan (reverse) order, run by one psql session with the same variables and
    no tracking, verify or snapshot: the least any tool can take for them."""
    head = "\\set ON_ERROR_STOP 1\n" + "".join(
        f"\\set {k} {v}\n" for k, v in {**VARIABLES, **SET}.items())
    names = [name for name, *_rest in p.changes]
    for kind, order in (("deploy", names), ("revert", names[::-1])):
        with open(os.path.join(top, f"floor-{kind}.sql"), "w") as f:
            f.write(head + "".join(f"\\ir {kind}/{n}.sql\n" for n in order))


def main():
    top, mb, psql = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    p = build()
    write(top, p, psql)
    write_floor(top, p)
    sql, rows = setup_sql(mb)
    with open(os.path.join(top, "setup.sql"), "w") as f:
        f.write(sql)
    print(f"changes\t{len(p.changes)}")
    for k, v in SET.items():
        print(f"set\t{k}={v}")
    for name, n in rows.items():
        print(f"rows_{name}\t{n}")


if __name__ == "__main__":
    main()
