//! Schema-only snapshots: the way back for a change without a down script
//! whose statements change no rows (grants, functions, policies, comments,
//! indexes, views, …). No data is read. In the change's own transaction the
//! definitions of the database's objects are read from the catalog before
//! its script runs and again after; what differs is what the change did,
//! and for each difference the statement that puts it back is written down
//! with the change (its revert plan). `down` runs them.
//!
//! Each definition is a *fact*: a key (`function public.f(integer)`,
//! `acl table public.t +app SELECT`), a value to compare, and the SQL that
//! creates it (from the before side) and drops it (from the after side). A
//! difference with no such SQL (a type altered, a role's attributes) cannot
//! be put back: `up` rolls the change back and refuses it.

use std::collections::{BTreeMap, BTreeSet};

use super::db::{Conn, Database};
use crate::tracking::SchemaUndo;
use crate::{Error, Result};

/// One definition, as read from the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fact {
    /// The object it belongs to: recreating that object re-applies it.
    object: String,
    /// The table it hangs on, if any: a table the change created takes it
    /// with it when dropped.
    parent: Option<String>,
    value: String,
    /// What must stay equal for `create` to replace the object in place
    /// (a view's columns, a function's signature and result).
    shape: Option<String>,
    create: Option<String>,
    drop: Option<String>,
    /// Drops run from the highest rank down, creates from the lowest up.
    rank: i32,
    /// `create` can be run over an existing different value.
    replace: bool,
}

pub(crate) type Facts = BTreeMap<String, Fact>;

/// The user objects of a PostgreSQL database (not the system's, not
/// ripcord's, not an extension's members) as facts.
const PG_FACTS: &str = r#"
WITH ns AS (
    SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_catalog.pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
      AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_namespace'::regclass
                      AND d.objid = n.oid AND d.deptype = 'e')),
fn AS (
    SELECT p.oid, p.prokind, p.proowner AS owner, p.proacl AS acl,
        pg_catalog.format('%I.%I(%s)', ns.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)) AS ref,
        CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END AS word
    FROM pg_catalog.pg_proc p JOIN ns ON ns.oid = p.pronamespace
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e')),
rel AS (
    SELECT c.oid, c.relkind, c.relowner AS owner, c.relacl AS acl, c.reloptions,
        c.relrowsecurity, c.relforcerowsecurity,
        pg_catalog.format('%I.%I', ns.nspname, c.relname) AS ref,
        CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'matview' WHEN 'S' THEN 'sequence'
            WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' ELSE 'table' END AS kind,
        CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
            WHEN 'i' THEN 'INDEX' WHEN 'I' THEN 'INDEX' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS word
    FROM pg_catalog.pg_class c JOIN ns ON ns.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')),
typ AS (
    SELECT t.oid, t.typtype, t.typowner AS owner, t.typacl AS acl, t.typbasetype, t.typtypmod,
        t.typrelid, t.typdefault, t.typnotnull,
        pg_catalog.format('%I.%I', ns.nspname, t.typname) AS ref,
        CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END AS word
    FROM pg_catalog.pg_type t JOIN ns ON ns.oid = t.typnamespace
    WHERE (t.typtype IN ('e', 'd', 'r', 'm')
           OR t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_type'::regclass
                      AND d.objid = t.oid AND d.deptype = 'e')),
owned AS (
    SELECT d.objid, 'table ' || r.ref AS tab FROM pg_catalog.pg_depend d JOIN rel r ON r.oid = d.refobjid
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0),
acl_obj AS (
    SELECT kind || ' ' || ref AS object, CASE relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || ref AS target,
        CASE relkind WHEN 'S' THEN 's' ELSE 'r' END AS t, owner, acl FROM rel WHERE relkind NOT IN ('i', 'I')
    UNION ALL SELECT 'function ' || ref, word || ' ' || ref, 'f', owner, acl FROM fn WHERE prokind <> 'a'
    UNION ALL SELECT 'schema ' || pg_catalog.quote_ident(nspname), 'SCHEMA ' || pg_catalog.quote_ident(nspname), 'n', nspowner, nspacl FROM ns
    UNION ALL SELECT 'type ' || ref, 'TYPE ' || ref, 'T', owner, acl FROM typ
    UNION ALL SELECT 'database', 'DATABASE ' || pg_catalog.quote_ident(datname), 'd', datdba, datacl
        FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()),
acl_cur AS (
    SELECT o.object, o.target, x.grantee, x.privilege_type AS priv, bool_or(x.is_grantable) AS g
    FROM acl_obj o, pg_catalog.aclexplode(coalesce(o.acl, pg_catalog.acldefault(o.t::"char", o.owner))) x
    GROUP BY 1, 2, 3, 4),
acl_def AS (
    SELECT o.object, o.target, x.grantee, x.privilege_type AS priv, bool_or(x.is_grantable) AS g
    FROM acl_obj o, pg_catalog.aclexplode(pg_catalog.acldefault(o.t::"char", o.owner)) x
    GROUP BY 1, 2, 3, 4),
dacl AS (
    SELECT d.defaclacl AS acl,
        CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'
            WHEN 'T' THEN 'TYPES' ELSE 'SCHEMAS' END AS what,
        'ALTER DEFAULT PRIVILEGES FOR ROLE ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(d.defaclrole))
            || CASE WHEN d.defaclnamespace = 0 THEN '' ELSE ' IN SCHEMA ' || pg_catalog.quote_ident(n.nspname) END AS head,
        CASE WHEN d.defaclnamespace = 0
            THEN pg_catalog.acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END::"char", d.defaclrole)
            ELSE '{}'::aclitem[] END AS base
    FROM pg_catalog.pg_default_acl d LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace),
dacl_cur AS (
    SELECT d.head, d.what, x.grantee, x.privilege_type AS priv, bool_or(x.is_grantable) AS g
    FROM dacl d, pg_catalog.aclexplode(d.acl) x GROUP BY 1, 2, 3, 4),
dacl_def AS (
    SELECT d.head, d.what, x.grantee, x.privilege_type AS priv, bool_or(x.is_grantable) AS g
    FROM dacl d, pg_catalog.aclexplode(d.base) x GROUP BY 1, 2, 3, 4),
role_name AS (
    SELECT 0::oid AS oid, 'PUBLIC' AS name
    UNION ALL SELECT oid, pg_catalog.quote_ident(rolname) FROM pg_catalog.pg_roles),
facts(key, object, parent, value, shape, create_sql, drop_sql, rank, replace) AS (
    SELECT 'role ' || pg_catalog.quote_ident(rolname), 'role ' || pg_catalog.quote_ident(rolname), NULL,
        ROW(rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,
            rolconnlimit, rolvaliduntil, rolconfig)::text, NULL, NULL,
        'DROP ROLE IF EXISTS ' || pg_catalog.quote_ident(rolname), 1, false
    FROM pg_catalog.pg_roles WHERE rolname !~ '^pg_'
    UNION ALL
    SELECT 'member ' || m.name || ' of ' || r.name, 'roles', NULL, a.admin_option::text, NULL,
        CASE WHEN a.admin_option THEN 'GRANT ' || r.name || ' TO ' || m.name || ' WITH ADMIN OPTION'
            ELSE 'REVOKE ADMIN OPTION FOR ' || r.name || ' FROM ' || m.name || '; GRANT ' || r.name || ' TO ' || m.name END,
        'REVOKE ' || r.name || ' FROM ' || m.name, 90, true
    FROM pg_catalog.pg_auth_members a JOIN role_name r ON r.oid = a.roleid JOIN role_name m ON m.oid = a.member
    WHERE r.name !~ '^pg_'
    UNION ALL
    SELECT 'extension ' || pg_catalog.quote_ident(extname), 'extension ' || pg_catalog.quote_ident(extname), NULL,
        extversion, NULL, NULL, 'DROP EXTENSION IF EXISTS ' || pg_catalog.quote_ident(extname), 5, false
    FROM pg_catalog.pg_extension
    UNION ALL
    SELECT 'schema ' || pg_catalog.quote_ident(nspname), 'schema ' || pg_catalog.quote_ident(nspname), NULL, 'schema', NULL,
        'CREATE SCHEMA ' || pg_catalog.quote_ident(nspname), 'DROP SCHEMA IF EXISTS ' || pg_catalog.quote_ident(nspname), 10, false
    FROM ns
    UNION ALL
    SELECT kind || ' ' || ref, kind || ' ' || ref, NULL, kind, NULL, NULL, NULL, 15, false
    FROM rel WHERE relkind IN ('r', 'p', 'f')
    UNION ALL
    SELECT 'type ' || ref, 'type ' || ref, NULL,
        typtype::text || ':' || CASE typtype
            WHEN 'e' THEN (SELECT pg_catalog.string_agg(enumlabel::text, ',' ORDER BY enumsortorder) FROM pg_catalog.pg_enum WHERE enumtypid = typ.oid)
            WHEN 'd' THEN pg_catalog.format_type(typbasetype, typtypmod) || ' ' || coalesce(typdefault, '') || ' ' || typnotnull
                || coalesce((SELECT pg_catalog.string_agg(conname || ' ' || pg_catalog.pg_get_constraintdef(c.oid), ', ' ORDER BY conname)
                             FROM pg_catalog.pg_constraint c WHERE c.contypid = typ.oid), '')
            ELSE coalesce((SELECT pg_catalog.string_agg(attname || ' ' || pg_catalog.format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
                           FROM pg_catalog.pg_attribute WHERE attrelid = typrelid AND attnum > 0 AND NOT attisdropped), '')
        END, NULL, NULL, 'DROP ' || word || ' IF EXISTS ' || ref, 20, false
    FROM typ
    UNION ALL
    SELECT 'sequence ' || r.ref, coalesce(o.tab, 'sequence ' || r.ref), o.tab,
        (SELECT s::text FROM pg_catalog.pg_sequence s WHERE s.seqrelid = r.oid), NULL, NULL,
        'DROP SEQUENCE IF EXISTS ' || r.ref, 25, false
    FROM rel r LEFT JOIN owned o ON o.objid = r.oid WHERE r.relkind = 'S'
    UNION ALL
    SELECT 'function ' || ref, 'function ' || ref, NULL,
        CASE WHEN prokind = 'a' THEN (SELECT a::text FROM pg_catalog.pg_aggregate a WHERE a.aggfnoid = fn.oid)
            ELSE pg_catalog.pg_get_functiondef(oid) END,
        pg_catalog.pg_get_function_arguments(oid) || ' -> ' || coalesce(pg_catalog.pg_get_function_result(oid), ''),
        CASE WHEN prokind = 'a' THEN NULL ELSE pg_catalog.pg_get_functiondef(oid) END,
        'DROP ' || word || ' IF EXISTS ' || ref, 30, true
    FROM fn
    UNION ALL
    SELECT kind || ' ' || ref, kind || ' ' || ref, NULL, pg_catalog.pg_get_viewdef(oid),
        (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(attname) || ' ' || pg_catalog.format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
         FROM pg_catalog.pg_attribute WHERE attrelid = rel.oid AND attnum > 0 AND NOT attisdropped),
        CASE WHEN relkind = 'v' THEN 'CREATE OR REPLACE VIEW ' || ref
            || coalesce(' WITH (' || pg_catalog.array_to_string(reloptions, ', ') || ')', '')
            || ' AS ' || pg_catalog.pg_get_viewdef(oid) END,
        'DROP ' || word || ' IF EXISTS ' || ref, 40, relkind = 'v'
    FROM rel WHERE relkind IN ('v', 'm')
    UNION ALL
    SELECT 'index ' || r.ref, 'index ' || r.ref, 'table ' || t.ref, pg_catalog.pg_get_indexdef(r.oid), NULL,
        pg_catalog.pg_get_indexdef(r.oid), 'DROP INDEX IF EXISTS ' || r.ref, 50, false
    FROM rel r JOIN pg_catalog.pg_index i ON i.indexrelid = r.oid JOIN rel t ON t.oid = i.indrelid
    WHERE r.relkind IN ('i', 'I')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = r.oid AND c.contype IN ('p', 'u', 'x'))
    UNION ALL
    SELECT 'trigger ' || pg_catalog.quote_ident(g.tgname) || ' on ' || r.ref,
        'trigger ' || pg_catalog.quote_ident(g.tgname) || ' on ' || r.ref, r.kind || ' ' || r.ref,
        pg_catalog.pg_get_triggerdef(g.oid) || ' ' || g.tgenabled::text, NULL,
        pg_catalog.pg_get_triggerdef(g.oid) || CASE g.tgenabled
            WHEN 'D' THEN '; ALTER TABLE ' || r.ref || ' DISABLE TRIGGER ' || pg_catalog.quote_ident(g.tgname)
            WHEN 'A' THEN '; ALTER TABLE ' || r.ref || ' ENABLE ALWAYS TRIGGER ' || pg_catalog.quote_ident(g.tgname)
            WHEN 'R' THEN '; ALTER TABLE ' || r.ref || ' ENABLE REPLICA TRIGGER ' || pg_catalog.quote_ident(g.tgname)
            ELSE '' END,
        'DROP TRIGGER IF EXISTS ' || pg_catalog.quote_ident(g.tgname) || ' ON ' || r.ref, 60, false
    FROM pg_catalog.pg_trigger g JOIN rel r ON r.oid = g.tgrelid
    WHERE NOT g.tgisinternal AND g.tgname NOT LIKE 'ripcord\_%'
    UNION ALL
    SELECT 'rls ' || kind || ' ' || ref, kind || ' ' || ref, kind || ' ' || ref,
        relrowsecurity::text || ' ' || relforcerowsecurity::text, NULL,
        'ALTER TABLE ' || ref || CASE WHEN relrowsecurity THEN ' ENABLE' ELSE ' DISABLE' END || ' ROW LEVEL SECURITY, '
            || CASE WHEN relforcerowsecurity THEN 'FORCE' ELSE 'NO FORCE' END || ' ROW LEVEL SECURITY',
        NULL, 70, true
    FROM rel WHERE relkind IN ('r', 'p')
    UNION ALL
    SELECT 'policy ' || pg_catalog.quote_ident(p.policyname) || ' on ' || r.ref,
        'policy ' || pg_catalog.quote_ident(p.policyname) || ' on ' || r.ref, 'table ' || r.ref, x.sql, NULL, x.sql,
        'DROP POLICY IF EXISTS ' || pg_catalog.quote_ident(p.policyname) || ' ON ' || r.ref, 80, false
    FROM pg_catalog.pg_policies p
    JOIN rel r ON r.ref = pg_catalog.format('%I.%I', p.schemaname, p.tablename) AND r.relkind IN ('r', 'p'),
    LATERAL (SELECT pg_catalog.format('CREATE POLICY %I ON %s AS %s FOR %s TO %s', p.policyname, r.ref, p.permissive, p.cmd,
            (SELECT pg_catalog.string_agg(CASE WHEN n = 'public' THEN 'PUBLIC' ELSE pg_catalog.quote_ident(n) END, ', ')
             FROM unnest(p.roles) n))
        || coalesce(' USING (' || p.qual || ')', '') || coalesce(' WITH CHECK (' || p.with_check || ')', '') AS sql) x
    UNION ALL
    SELECT 'owner ' || o.object, o.object, NULL, pg_catalog.pg_get_userbyid(o.owner), NULL,
        'ALTER ' || o.word || ' ' || o.ref || ' OWNER TO ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(o.owner)),
        NULL, 85, true
    FROM (SELECT kind || ' ' || ref AS object, word, ref, owner FROM rel WHERE relkind NOT IN ('i', 'I')
          UNION ALL SELECT 'function ' || ref, word, ref, owner FROM fn
          UNION ALL SELECT 'schema ' || pg_catalog.quote_ident(nspname), 'SCHEMA', pg_catalog.quote_ident(nspname), nspowner FROM ns
          UNION ALL SELECT 'type ' || ref, word, ref, owner FROM typ) o
    UNION ALL
    SELECT 'acl ' || c.object || ' +' || g.name || ' ' || c.priv, c.object, NULL, c.g::text, NULL,
        CASE WHEN c.g THEN 'GRANT ' || c.priv || ' ON ' || c.target || ' TO ' || g.name || ' WITH GRANT OPTION'
            WHEN g.name = 'PUBLIC' THEN 'GRANT ' || c.priv || ' ON ' || c.target || ' TO ' || g.name
            ELSE 'REVOKE GRANT OPTION FOR ' || c.priv || ' ON ' || c.target || ' FROM ' || g.name
                || '; GRANT ' || c.priv || ' ON ' || c.target || ' TO ' || g.name END,
        'REVOKE ' || c.priv || ' ON ' || c.target || ' FROM ' || g.name, 95, true
    FROM acl_cur c JOIN role_name g ON g.oid = c.grantee
    WHERE NOT EXISTS (SELECT 1 FROM acl_def d WHERE d.object = c.object AND d.grantee = c.grantee AND d.priv = c.priv AND d.g = c.g)
    UNION ALL
    SELECT 'acl ' || d.object || ' -' || g.name || ' ' || d.priv, d.object, NULL, 'revoked', NULL,
        'REVOKE ' || d.priv || ' ON ' || d.target || ' FROM ' || g.name,
        'GRANT ' || d.priv || ' ON ' || d.target || ' TO ' || g.name, 95, true
    FROM acl_def d JOIN role_name g ON g.oid = d.grantee
    WHERE NOT EXISTS (SELECT 1 FROM acl_cur c WHERE c.object = d.object AND c.grantee = d.grantee AND c.priv = d.priv)
    UNION ALL
    SELECT 'acl table ' || r.ref || '.' || pg_catalog.quote_ident(a.attname) || ' +' || g.name || ' ' || x.privilege_type,
        'table ' || r.ref, 'table ' || r.ref, bool_or(x.is_grantable)::text, NULL,
        'GRANT ' || x.privilege_type || ' (' || pg_catalog.quote_ident(a.attname) || ') ON TABLE ' || r.ref || ' TO ' || g.name
            || CASE WHEN bool_or(x.is_grantable) THEN ' WITH GRANT OPTION' ELSE '' END,
        'REVOKE ' || x.privilege_type || ' (' || pg_catalog.quote_ident(a.attname) || ') ON TABLE ' || r.ref || ' FROM ' || g.name,
        95, true
    FROM rel r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attacl IS NOT NULL,
        pg_catalog.aclexplode(a.attacl) x JOIN role_name g ON g.oid = x.grantee
    GROUP BY r.ref, a.attname, g.name, x.privilege_type
    UNION ALL
    SELECT 'default acl ' || c.head || ' ON ' || c.what || ' +' || g.name || ' ' || c.priv, 'default acl', NULL, c.g::text, NULL,
        c.head || ' GRANT ' || c.priv || ' ON ' || c.what || ' TO ' || g.name || CASE WHEN c.g THEN ' WITH GRANT OPTION' ELSE '' END,
        c.head || ' REVOKE ' || c.priv || ' ON ' || c.what || ' FROM ' || g.name, 96, true
    FROM dacl_cur c JOIN role_name g ON g.oid = c.grantee
    WHERE NOT EXISTS (SELECT 1 FROM dacl_def d WHERE d.head = c.head AND d.what = c.what AND d.grantee = c.grantee AND d.priv = c.priv AND d.g = c.g)
    UNION ALL
    SELECT 'default acl ' || d.head || ' ON ' || d.what || ' -' || g.name || ' ' || d.priv, 'default acl', NULL, 'revoked', NULL,
        d.head || ' REVOKE ' || d.priv || ' ON ' || d.what || ' FROM ' || g.name,
        d.head || ' GRANT ' || d.priv || ' ON ' || d.what || ' TO ' || g.name, 96, true
    FROM dacl_def d JOIN role_name g ON g.oid = d.grantee
    WHERE NOT EXISTS (SELECT 1 FROM dacl_cur c WHERE c.head = d.head AND c.what = d.what AND c.grantee = d.grantee AND c.priv = d.priv)
    UNION ALL
    SELECT 'comment ' || o.target, o.object, o.parent, d.description, NULL,
        'COMMENT ON ' || o.target || ' IS ' || pg_catalog.quote_literal(d.description),
        'COMMENT ON ' || o.target || ' IS NULL', 99, true
    FROM pg_catalog.pg_description d JOIN (
        SELECT 'pg_catalog.pg_class'::regclass AS classoid, r.oid, 0 AS sub, r.word || ' ' || r.ref AS target,
            r.kind || ' ' || r.ref AS object, NULL AS parent FROM rel r
        UNION ALL SELECT 'pg_catalog.pg_class'::regclass, r.oid, a.attnum, 'COLUMN ' || r.ref || '.' || pg_catalog.quote_ident(a.attname),
            r.kind || ' ' || r.ref, r.kind || ' ' || r.ref
            FROM rel r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL SELECT 'pg_catalog.pg_proc'::regclass, oid, 0, word || ' ' || ref, 'function ' || ref, NULL FROM fn
        UNION ALL SELECT 'pg_catalog.pg_namespace'::regclass, oid, 0, 'SCHEMA ' || pg_catalog.quote_ident(nspname),
            'schema ' || pg_catalog.quote_ident(nspname), NULL FROM ns
        UNION ALL SELECT 'pg_catalog.pg_type'::regclass, oid, 0, word || ' ' || ref, 'type ' || ref, NULL FROM typ
        UNION ALL SELECT 'pg_catalog.pg_policy'::regclass, p.oid, 0, 'POLICY ' || pg_catalog.quote_ident(p.polname) || ' ON ' || r.ref,
            'policy ' || pg_catalog.quote_ident(p.polname) || ' on ' || r.ref, 'table ' || r.ref
            FROM pg_catalog.pg_policy p JOIN rel r ON r.oid = p.polrelid
        UNION ALL SELECT 'pg_catalog.pg_trigger'::regclass, g.oid, 0, 'TRIGGER ' || pg_catalog.quote_ident(g.tgname) || ' ON ' || r.ref,
            'trigger ' || pg_catalog.quote_ident(g.tgname) || ' on ' || r.ref, r.kind || ' ' || r.ref
            FROM pg_catalog.pg_trigger g JOIN rel r ON r.oid = g.tgrelid WHERE NOT g.tgisinternal
    ) o ON o.classoid = d.classoid AND o.oid = d.objoid AND o.sub = d.objsubid)
SELECT key, object, parent, value, shape, create_sql, drop_sql, rank, replace FROM facts
"#;

/// The indexes, views and triggers of a SQLite database (and its tables,
/// which the change's created-table list covers).
const SQLITE_FACTS: &str = "SELECT type, name, tbl_name, coalesce(sql, '') FROM main.sqlite_master
    WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'ripcord\\_%' ESCAPE '\\'
      AND type IN ('table', 'index', 'view', 'trigger')";

/// Reads the facts of the database, inside the caller's transaction.
pub(crate) fn facts(db: &mut dyn Database) -> Result<Facts> {
    let mut out = Facts::new();
    match db.conn() {
        Conn::Postgres(client) => {
            // With an empty search_path the catalog prints every name
            // qualified: the same text whatever the script set.
            let context = || Error::postgres("read the definitions for a schema-only snapshot");
            let old: String = client
                .query_one("SELECT pg_catalog.current_setting('search_path')", &[])
                .map_err(context())?
                .get(0);
            client
                .execute("SELECT pg_catalog.set_config('search_path', '', true)", &[])
                .map_err(context())?;
            let rows = client.query(PG_FACTS, &[]).map_err(context())?;
            client
                .execute(
                    "SELECT pg_catalog.set_config('search_path', $1, true)",
                    &[&old],
                )
                .map_err(context())?;
            for r in rows {
                let key: String = r.get(0);
                out.insert(
                    key,
                    Fact {
                        object: r.get(1),
                        parent: r.get(2),
                        value: r.get::<_, Option<String>>(3).unwrap_or_default(),
                        shape: r.get(4),
                        create: r.get(5),
                        drop: r.get(6),
                        rank: r.get(7),
                        replace: r.get(8),
                    },
                );
            }
        }
        Conn::Sqlite(conn) => {
            let context = || Error::sqlite("read the definitions for a schema-only snapshot");
            let mut stmt = conn.prepare(SQLITE_FACTS).map_err(context())?;
            let rows: Vec<(String, String, String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(context())?
                .collect::<rusqlite::Result<_>>()
                .map_err(context())?;
            for (kind, name, table, sql) in rows {
                let quoted = format!("\"{}\"", name.replace('"', "\"\""));
                let key = format!("{kind} {quoted}");
                let (create, drop, rank, parent) = match kind.as_str() {
                    "table" => (None, None, 15, None),
                    "view" => (
                        Some(sql.clone()),
                        Some(format!("DROP VIEW IF EXISTS {quoted}")),
                        40,
                        None,
                    ),
                    "index" if sql.is_empty() => continue, // an automatic index
                    "index" => (
                        Some(sql.clone()),
                        Some(format!("DROP INDEX IF EXISTS {quoted}")),
                        50,
                        Some(table),
                    ),
                    _ => (
                        Some(sql.clone()),
                        Some(format!("DROP TRIGGER IF EXISTS {quoted}")),
                        60,
                        Some(table),
                    ),
                };
                out.insert(
                    key.clone(),
                    Fact {
                        object: key,
                        parent: parent.map(|t| format!("table \"{}\"", t.replace('"', "\"\""))),
                        value: sql,
                        shape: None,
                        create,
                        drop,
                        rank,
                        replace: false,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// What the change did between `before` and `after`, and the statements
/// that undo it; `Err` names the definitions that cannot be put back.
pub(crate) fn undo(before: &Facts, after: &Facts) -> std::result::Result<SchemaUndo, String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let changed: Vec<&String> = keys
        .into_iter()
        .filter(|k| {
            let (b, a) = (before.get(*k), after.get(*k));
            b.map(|f| (&f.value, &f.shape)) != a.map(|f| (&f.value, &f.shape))
        })
        .collect();
    // Objects the change created: what hangs on them goes with them.
    let created: BTreeSet<&str> = changed
        .iter()
        .filter(|k| !before.contains_key(**k) && after.get(**k).is_some_and(|f| f.object == ***k))
        .map(|k| k.as_str())
        .collect();
    let goes_with_created = |key: &str, f: &Fact| {
        (f.object != key && created.contains(f.object.as_str()))
            || f.parent.as_deref().is_some_and(|p| created.contains(p))
    };
    let mut drops: Vec<(i32, String)> = Vec::new();
    let mut creates: Vec<(i32, String)> = Vec::new();
    let mut recreated: BTreeSet<&str> = BTreeSet::new();
    let mut cannot = Vec::new();
    for key in &changed {
        let key = key.as_str();
        match (before.get(key), after.get(key)) {
            (None, Some(a)) => {
                if goes_with_created(key, a) {
                    continue;
                }
                match &a.drop {
                    Some(sql) => drops.push((a.rank, sql.clone())),
                    // A created table: the revert drops it, with what is on it.
                    None if a.object == key && a.rank == 15 => {}
                    None => cannot.push(key.to_string()),
                }
            }
            (Some(b), after_fact) => {
                let Some(create) = &b.create else {
                    cannot.push(key.to_string());
                    continue;
                };
                let in_place = after_fact.is_none_or(|a| b.replace && a.shape == b.shape);
                if let (Some(a), false) = (after_fact, in_place) {
                    match &a.drop {
                        Some(sql) => drops.push((a.rank, sql.clone())),
                        None => {
                            cannot.push(key.to_string());
                            continue;
                        }
                    }
                }
                if b.object == key && (after_fact.is_none() || !in_place) {
                    recreated.insert(key);
                }
                creates.push((b.rank, create.clone()));
            }
            (None, None) => {}
        }
    }
    // A recreated object gets back all it had: owner, grants, comments.
    for object in &recreated {
        for (key, f) in before {
            if f.object == *object && key != object && !changed.contains(&key) {
                match &f.create {
                    Some(sql) => creates.push((f.rank, sql.clone())),
                    None => cannot.push(key.clone()),
                }
            }
        }
    }
    if !cannot.is_empty() {
        return Err(cannot.join(", "));
    }
    drops.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
    creates.sort_by_key(|(rank, _)| *rank);
    Ok(SchemaUndo {
        objects: changed.into_iter().cloned().collect(),
        statements: drops
            .into_iter()
            .chain(creates)
            .map(|(_, sql)| sql)
            .collect(),
    })
}

/// Statement shapes a schema-only snapshot puts back exactly: the objects
/// the catalog read above covers. `Some(why)` for one it does not.
pub(crate) fn unsupported(sql: &str, dialect: crate::analyze::Dialect) -> Option<String> {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(40)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or_default();
    let skip = |mut i: usize| {
        while matches!(
            w(i),
            "OR" | "REPLACE"
                | "UNIQUE"
                | "TEMP"
                | "TEMPORARY"
                | "UNLOGGED"
                | "RECURSIVE"
                | "CONSTRAINT"
                | "IF"
                | "NOT"
                | "EXISTS"
        ) {
            i += 1;
        }
        i
    };
    const OBJECTS: &[&str] = &[
        "FUNCTION",
        "PROCEDURE",
        "ROUTINE",
        "AGGREGATE",
        "TRIGGER",
        "POLICY",
        "TYPE",
        "DOMAIN",
        "SCHEMA",
        "EXTENSION",
        "SEQUENCE",
        "INDEX",
        "VIEW",
        "MATERIALIZED",
        "ROLE",
        "USER",
        "GROUP",
        "TABLE",
    ];
    const SQLITE_OBJECTS: &[&str] = &["TRIGGER", "INDEX", "VIEW", "TABLE"];
    const TRIVIAL: &[&str] = &[
        "SET",
        "RESET",
        "SHOW",
        "SELECT",
        "VALUES",
        "ANALYZE",
        "COMMIT",
        "ROLLBACK",
        "BEGIN",
        "START",
        "SAVEPOINT",
        "RELEASE",
        "LISTEN",
        "UNLISTEN",
        "NOTIFY",
        "DISCARD",
        "LOCK",
        "PRAGMA",
    ];
    let first = w(0);
    if TRIVIAL.contains(&first) {
        return None;
    }
    let refuse = |what: &str| {
        Some(format!(
            "{what} is not in what a schema-only snapshot records"
        ))
    };
    match (first, dialect) {
        ("CREATE" | "DROP" | "ALTER", crate::analyze::Dialect::Sqlite) => {
            let object = w(skip(1));
            if SQLITE_OBJECTS.contains(&object) {
                None
            } else {
                refuse(&format!("{first} {object}"))
            }
        }
        (_, crate::analyze::Dialect::Sqlite) => refuse(first),
        ("GRANT" | "REVOKE", _) => {
            let on = words.iter().position(|x| x == "ON")?;
            let mut object = w(on + 1);
            if object == "ALL" {
                object = w(on + 2);
            }
            match object {
                "FOREIGN" | "LANGUAGE" | "LARGE" | "TABLESPACE" | "PARAMETER" => {
                    refuse(&format!("{first} ON {object}"))
                }
                _ => None,
            }
        }
        ("COMMENT", _) => match w(2) {
            "TABLE" | "COLUMN" | "VIEW" | "MATERIALIZED" | "INDEX" | "SEQUENCE" | "FUNCTION"
            | "PROCEDURE" | "ROUTINE" | "AGGREGATE" | "SCHEMA" | "TYPE" | "DOMAIN" | "POLICY"
            | "TRIGGER" => None,
            other => refuse(&format!("COMMENT ON {other}")),
        },
        ("ALTER", _) if w(1) == "DEFAULT" && w(2) == "PRIVILEGES" => None,
        // Adds or removes extension members, which it does not record.
        ("ALTER", _) if w(1) == "EXTENSION" => refuse("ALTER EXTENSION"),
        ("ALTER", _)
            if matches!(w(1), "ROLE" | "USER") && words.iter().any(|x| x == "PASSWORD") =>
        {
            refuse("a role's password")
        }
        ("CREATE" | "DROP" | "ALTER", _) => {
            let object = w(skip(1));
            if OBJECTS.contains(&object) {
                None
            } else {
                refuse(&format!("{first} {object}"))
            }
        }
        _ => refuse(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(
        object: &str,
        value: &str,
        create: Option<&str>,
        drop: Option<&str>,
        rank: i32,
    ) -> Fact {
        Fact {
            object: object.into(),
            parent: None,
            value: value.into(),
            shape: None,
            create: create.map(str::to_string),
            drop: drop.map(str::to_string),
            rank,
            replace: true,
        }
    }

    #[test]
    fn created_objects_are_dropped_with_what_hangs_on_them_and_changed_ones_redefined() {
        let mut before = Facts::new();
        before.insert(
            "function f()".into(),
            fact(
                "function f()",
                "old",
                Some("CREATE OR REPLACE f old"),
                Some("DROP f"),
                30,
            ),
        );
        let mut after = before.clone();
        after.insert(
            "function f()".into(),
            fact(
                "function f()",
                "new",
                Some("CREATE OR REPLACE f new"),
                Some("DROP f"),
                30,
            ),
        );
        after.insert(
            "function g()".into(),
            fact("function g()", "g", Some("CREATE g"), Some("DROP g"), 30),
        );
        // A grant on the new function goes with it; one on t is revoked.
        after.insert(
            "acl function g() +app EXECUTE".into(),
            fact(
                "function g()",
                "false",
                Some("GRANT g"),
                Some("REVOKE g"),
                95,
            ),
        );
        after.insert(
            "acl table t +app SELECT".into(),
            fact("table t", "false", Some("GRANT t"), Some("REVOKE t"), 95),
        );
        let undo = undo(&before, &after).unwrap();
        assert_eq!(
            undo.statements,
            ["REVOKE t", "DROP g", "CREATE OR REPLACE f old"]
        );
        assert_eq!(undo.objects.len(), 4);
    }

    #[test]
    fn an_object_dropped_and_created_again_gets_back_its_grants_and_comments() {
        let mut before = Facts::new();
        let mut view = fact("view v", "def1", Some("CREATE v def1"), Some("DROP v"), 40);
        view.shape = Some("a int".into());
        before.insert("view v".into(), view.clone());
        before.insert(
            "comment VIEW v".into(),
            fact(
                "view v",
                "hi",
                Some("COMMENT v hi"),
                Some("COMMENT v NULL"),
                99,
            ),
        );
        let mut after = Facts::new();
        let mut wider = fact("view v", "def2", Some("CREATE v def2"), Some("DROP v"), 40);
        wider.shape = Some("a int, b int".into());
        after.insert("view v".into(), wider);
        after.insert(
            "comment VIEW v".into(),
            fact(
                "view v",
                "hi",
                Some("COMMENT v hi"),
                Some("COMMENT v NULL"),
                99,
            ),
        );
        let undo = undo(&before, &after).unwrap();
        assert_eq!(undo.statements, ["DROP v", "CREATE v def1", "COMMENT v hi"]);
    }

    #[test]
    fn what_cannot_be_recreated_is_refused() {
        let mut before = Facts::new();
        before.insert(
            "type mood".into(),
            fact("type mood", "e:ok", None, Some("DROP TYPE mood"), 20),
        );
        let mut after = Facts::new();
        after.insert(
            "type mood".into(),
            fact("type mood", "e:ok,meh", None, Some("DROP TYPE mood"), 20),
        );
        assert_eq!(undo(&before, &after).unwrap_err(), "type mood");
    }

    #[test]
    fn statements_outside_the_snapshot_are_named() {
        use crate::analyze::Dialect::{Postgres, Sqlite};
        assert!(unsupported("GRANT SELECT ON t TO app", Postgres).is_none());
        assert!(unsupported("CREATE OR REPLACE VIEW v AS SELECT 1", Postgres).is_none());
        assert!(unsupported(
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO app",
            Postgres
        )
        .is_none());
        assert!(unsupported("CREATE COLLATION c (locale = 'de')", Postgres).is_some());
        assert!(unsupported("GRANT USAGE ON FOREIGN SERVER s TO app", Postgres).is_some());
        assert!(unsupported("COMMENT ON CONSTRAINT c ON t IS 'x'", Postgres).is_some());
        assert!(unsupported("ALTER ROLE app PASSWORD 'x'", Postgres).is_some());
        assert!(unsupported("CREATE UNIQUE INDEX i ON t (a)", Sqlite).is_none());
        assert!(unsupported("CREATE VIRTUAL TABLE f USING fts5(a)", Sqlite).is_some());
    }
}
