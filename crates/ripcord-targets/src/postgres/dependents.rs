//! What depends on a table and goes when it goes: views and materialized
//! views reading it (also through other views), foreign keys to and from
//! it, and the constraints, indexes, triggers, rules, policies, grants and
//! comments of it and of those views. `ALTER TABLE … DROP COLUMN … CASCADE`
//! and `DROP TABLE … CASCADE` take them along silently, so a table-level
//! safety snapshot records them, and a revert creates again the ones that
//! are gone.

use std::collections::HashMap;

use postgres::types::Oid;
use postgres::Client;
use ripcord_repo::manifest::PgDependent;

use super::conn::pg_err;
use crate::error::Result;

pub const FOREIGN_KEY: &str = "foreign-key";
pub const VIEW: &str = "view";
pub const MATERIALIZED_VIEW: &str = "materialized-view";
pub const REFRESH: &str = "refresh";
pub const CONSTRAINT: &str = "constraint";
pub const INDEX: &str = "index";
pub const TRIGGER: &str = "trigger";
pub const RULE: &str = "rule";
pub const POLICY: &str = "policy";
pub const GRANT: &str = "grant";
pub const COMMENT: &str = "comment";

/// The order a revert creates them in: relations first, then what lives on
/// them, rows last. Each group is retried while some succeed, so views on
/// views (or on materialized views) come in the order they need.
pub const ORDER: [&[&str]; 10] = [
    &[CONSTRAINT],
    &[VIEW, MATERIALIZED_VIEW],
    &[INDEX],
    &[FOREIGN_KEY],
    &[TRIGGER],
    &[RULE],
    &[POLICY],
    &[GRANT],
    &[COMMENT],
    &[REFRESH],
];

/// One relation of the closure: a taken table or a view reading it.
struct Rel {
    oid: Oid,
    kind: String,
    name: String,
    on: String,
}

/// Every dependent of `tables` (quoted, qualified names). The caller has
/// set `search_path` to `pg_catalog` (in its transaction), so that the
/// definitions qualify every name.
pub fn record(client: &mut Client, tables: &[String]) -> Result<Vec<PgDependent>> {
    let rels: Vec<Rel> = client
        .query(
            "WITH RECURSIVE deps(rel, root) AS (
                 SELECT t::regclass::oid, t::regclass::oid FROM unnest($1::text[]) t
               UNION
                 SELECT w.ev_class, deps.root
                 FROM deps JOIN pg_depend d ON d.refobjid = deps.rel
                   AND d.refclassid = 'pg_class'::regclass AND d.classid = 'pg_rewrite'::regclass
                 JOIN pg_rewrite w ON w.oid = d.objid AND w.rulename = '_RETURN'
                 JOIN pg_class v ON v.oid = w.ev_class AND v.relkind IN ('v', 'm')
                 WHERE w.ev_class <> deps.rel)
             SELECT DISTINCT ON (c.oid) c.oid, c.relkind::text, format('%I.%I', n.nspname, c.relname),
                    rn.nspname || '.' || rt.relname
             FROM deps JOIN pg_class c ON c.oid = deps.rel
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_class rt ON rt.oid = deps.root JOIN pg_namespace rn ON rn.oid = rt.relnamespace
             ORDER BY c.oid, deps.root",
            &[&tables],
        )
        .map_err(pg_err("reading the views on the taken tables"))?
        .iter()
        .map(|r| Rel {
            oid: r.get(0),
            kind: r.get(1),
            name: r.get(2),
            on: r.get(3),
        })
        .collect();
    let oids: Vec<Oid> = rels.iter().map(|r| r.oid).collect();
    let by_oid: HashMap<Oid, &Rel> = rels.iter().map(|r| (r.oid, r)).collect();
    let on = |oid: Oid| by_oid.get(&oid).map(|r| r.on.clone()).unwrap_or_default();
    let mut out = Vec::new();
    let mut push = |on: String, kind: &str, relation: String, name: String, definition: String| {
        out.push(PgDependent {
            on,
            kind: kind.to_string(),
            relation,
            name,
            definition,
            owner: None,
            options: String::new(),
        })
    };

    let mut views = Vec::new();
    for r in client
        .query(
            "SELECT c.oid, pg_get_viewdef(c.oid), pg_get_userbyid(c.relowner)::text,
                    coalesce(array_to_string(c.reloptions, ', '), ''), c.relispopulated
             FROM pg_class c WHERE c.oid = ANY($1) AND c.relkind IN ('v', 'm') ORDER BY c.oid",
            &[&oids],
        )
        .map_err(pg_err("reading the views on the taken tables"))?
    {
        let rel = by_oid[&r.get::<_, Oid>(0)];
        let matview = rel.kind == "m";
        views.push(PgDependent {
            on: rel.on.clone(),
            kind: if matview { MATERIALIZED_VIEW } else { VIEW }.to_string(),
            relation: rel.name.clone(),
            name: String::new(),
            definition: r.get(1),
            owner: Some(r.get(2)),
            options: r.get(3),
        });
        if matview && r.get::<_, bool>(4) {
            views.push(PgDependent {
                on: rel.on.clone(),
                kind: REFRESH.to_string(),
                relation: rel.name.clone(),
                name: String::new(),
                definition: format!("REFRESH MATERIALIZED VIEW {}", rel.name),
                owner: None,
                options: String::new(),
            });
        }
    }

    // Constraints of the relations, and foreign keys of other tables to them.
    for r in client
        .query(
            "SELECT c.conrelid, c.confrelid, c.contype::text,
                    format('%I.%I', n.nspname, t.relname), c.conname::text, pg_get_constraintdef(c.oid)
             FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE (c.conrelid = ANY($1) AND c.contype IN ('c', 'u', 'p', 'x', 'f'))
                OR (c.confrelid = ANY($1) AND c.contype = 'f')
             ORDER BY c.conrelid, c.conname",
            &[&oids],
        )
        .map_err(pg_err("reading the constraints of the taken tables"))?
    {
        let (rel, frel, kind): (Oid, Oid, String) = (r.get(0), r.get(1), r.get(2));
        let (kind, root) = if kind == "f" {
            let root = if by_oid.contains_key(&frel) { frel } else { rel };
            (FOREIGN_KEY, on(root))
        } else {
            (CONSTRAINT, on(rel))
        };
        push(root, kind, r.get(3), r.get(4), r.get(5));
    }

    for r in client
        .query(
            "SELECT x.indrelid, i.relname::text, pg_get_indexdef(x.indexrelid)
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             WHERE x.indrelid = ANY($1) AND NOT EXISTS (
                 SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid)
             ORDER BY 1, 2",
            &[&oids],
        )
        .map_err(pg_err("reading the indexes of the taken tables"))?
    {
        let rel: Oid = r.get(0);
        push(on(rel), INDEX, by_oid[&rel].name.clone(), r.get(1), r.get(2));
    }

    // ripcord's own change-capture triggers are not the application's.
    for r in client
        .query(
            "SELECT t.tgrelid, t.tgname::text, pg_get_triggerdef(t.oid) || CASE t.tgenabled
                        WHEN 'D' THEN format('; ALTER TABLE %s DISABLE TRIGGER %I', t.tgrelid::regclass, t.tgname)
                        WHEN 'R' THEN format('; ALTER TABLE %s ENABLE REPLICA TRIGGER %I', t.tgrelid::regclass, t.tgname)
                        WHEN 'A' THEN format('; ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.tgrelid::regclass, t.tgname)
                        ELSE '' END
             FROM pg_trigger t WHERE t.tgrelid = ANY($1) AND NOT t.tgisinternal
               AND t.tgname NOT LIKE 'ripcord\\_capture%' AND t.tgname <> 'ripcord_written'
             ORDER BY 1, 2",
            &[&oids],
        )
        .map_err(pg_err("reading the triggers of the taken tables"))?
    {
        let rel: Oid = r.get(0);
        push(on(rel), TRIGGER, by_oid[&rel].name.clone(), r.get(1), r.get(2));
    }

    // Rules and policies: those on the relations, and those elsewhere whose
    // expressions read them.
    for r in client
        .query(
            "SELECT DISTINCT w.ev_class, format('%I.%I', n.nspname, c.relname), w.rulename::text,
                    pg_get_ruledef(w.oid), coalesce(d.refobjid, w.ev_class)
             FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY($1)
                  AND NOT w.ev_class = ANY($1)
             WHERE w.rulename <> '_RETURN' AND (w.ev_class = ANY($1) OR d.refobjid IS NOT NULL)
             ORDER BY 1, 3",
            &[&oids],
        )
        .map_err(pg_err("reading the rules on the taken tables"))?
    {
        push(on(r.get(4)), RULE, r.get(1), r.get(2), r.get(3));
    }
    for r in client
        .query(
            "SELECT DISTINCT p.polrelid, format('%I.%I', n.nspname, c.relname), p.polname::text,
                    format('CREATE POLICY %I ON %I.%I AS %s FOR %s TO %s%s%s',
                           p.polname, n.nspname, c.relname,
                           CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                           CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                                         WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                           (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC'
                                                   ELSE quote_ident(pg_get_userbyid(r)) END, ', ')
                            FROM unnest(p.polroles) r),
                           ' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                           ' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')'),
                    coalesce(d.refobjid, p.polrelid)
             FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY($1)
                  AND NOT p.polrelid = ANY($1)
             WHERE p.polrelid = ANY($1) OR d.refobjid IS NOT NULL
             ORDER BY 1, 3",
            &[&oids],
        )
        .map_err(pg_err("reading the policies on the taken tables"))?
    {
        push(on(r.get(4)), POLICY, r.get(1), r.get(2), r.get(3));
    }

    for (rel, name, definition) in grants(client, &oids)? {
        push(on(rel), GRANT, by_oid[&rel].name.clone(), name, definition);
    }
    for r in client
        .query(
            "SELECT d.objoid, d.objsubid, coalesce(a.attname::text, ''),
                    CASE WHEN d.objsubid = 0
                         THEN format('COMMENT ON %s %s IS %L',
                                     CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                                    ELSE 'TABLE' END,
                                     c.oid::regclass, d.description)
                         ELSE format('COMMENT ON COLUMN %s.%I IS %L', c.oid::regclass, a.attname, d.description)
                    END
             FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
             LEFT JOIN pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid AND d.objsubid > 0
             WHERE d.classoid = 'pg_class'::regclass AND d.objoid = ANY($1)
               AND (d.objsubid = 0 OR NOT a.attisdropped)
             ORDER BY 1, 2",
            &[&oids],
        )
        .map_err(pg_err("reading the comments on the taken tables"))?
    {
        let rel: Oid = r.get(0);
        let column: String = r.get(2);
        let name = if column.is_empty() {
            String::new()
        } else {
            format!("column {column}")
        };
        push(on(rel), COMMENT, by_oid[&rel].name.clone(), name, r.get(3));
    }
    out.extend(views);
    // A rule or policy reading two taken tables is listed once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| seen.insert((d.kind.clone(), d.relation.clone(), d.name.clone())));
    Ok(out)
}

/// Every dependent of every user table, for comparing two points in time.
pub fn of_database(client: &mut Client) -> Result<Vec<PgDependent>> {
    client
        .batch_execute("BEGIN; SET LOCAL search_path = pg_catalog")
        .map_err(pg_err("reading what depends on the tables"))?;
    let tables: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
               AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
             ORDER BY 1",
            &[],
        )
        .map_err(pg_err("listing tables"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let out = record(client, &tables);
    let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
    client
        .batch_execute(end)
        .map_err(pg_err("reading what depends on the tables"))?;
    out
}

/// Privileges granted on the relations (their owner's own left out), one a
/// privilege, grantee and column: (relation, name, GRANT statement).
fn grants(client: &mut Client, oids: &[Oid]) -> Result<Vec<(Oid, String, String)>> {
    Ok(client
        .query(
            "WITH acl AS (
                 SELECT c.oid, NULL::name AS col, a.grantee, a.privilege_type, a.is_grantable
                 FROM pg_class c, aclexplode(c.relacl) a
                 WHERE c.oid = ANY($1) AND a.grantee <> c.relowner
               UNION ALL
                 SELECT c.oid, t.attname, a.grantee, a.privilege_type, a.is_grantable
                 FROM pg_class c JOIN pg_attribute t ON t.attrelid = c.oid AND t.attnum > 0
                      AND NOT t.attisdropped, aclexplode(t.attacl) a
                 WHERE c.oid = ANY($1) AND a.grantee <> c.relowner),
             named AS (
                 SELECT oid, col, privilege_type, is_grantable,
                        CASE WHEN grantee = 0 THEN 'PUBLIC'
                             ELSE quote_ident(pg_get_userbyid(grantee)) END AS who
                 FROM acl)
             SELECT oid,
                    privilege_type || coalesce(' (' || quote_ident(col) || ')', '') || ' to ' || who
                      || CASE WHEN is_grantable THEN ' with grant option' ELSE '' END,
                    format('GRANT %s%s ON %s TO %s%s', privilege_type,
                           coalesce(' (' || quote_ident(col) || ')', ''), oid::regclass, who,
                           CASE WHEN is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
             FROM named ORDER BY 1, 2",
            &[&oids],
        )
        .map_err(pg_err("reading the grants on the taken tables"))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Whether the relation that holds `d` exists (for a view: the view).
pub fn holder_exists(client: &mut Client, d: &PgDependent) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
            &[&d.relation],
        )
        .map_err(pg_err(format!("looking for {}", d.relation)))?
        .get(0))
}

/// Whether `d` is there now. Something of the same name counts: a revert
/// leaves alone what is present.
pub fn exists(client: &mut Client, d: &PgDependent) -> Result<bool> {
    let context = format!("looking for {}", describe(d));
    if d.kind == GRANT {
        let Some(oid) = client
            .query_one(
                "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
                &[&d.relation],
            )
            .map_err(pg_err(&context))?
            .get::<_, Option<Oid>>(0)
        else {
            return Ok(false);
        };
        return Ok(grants(client, &[oid])?.iter().any(|(_, n, _)| *n == d.name));
    }
    let sql = match d.kind.as_str() {
        VIEW | MATERIALIZED_VIEW => "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        REFRESH => {
            "SELECT coalesce((SELECT relispopulated FROM pg_catalog.pg_class
                              WHERE oid = pg_catalog.to_regclass($1)), false)"
        }
        FOREIGN_KEY | CONSTRAINT => {
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                            WHERE conrelid = pg_catalog.to_regclass($1) AND conname = $2)"
        }
        INDEX => {
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index x
                            JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
                            WHERE x.indrelid = pg_catalog.to_regclass($1) AND i.relname = $2)"
        }
        TRIGGER => {
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                            WHERE tgrelid = pg_catalog.to_regclass($1) AND tgname = $2)"
        }
        RULE => {
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite
                            WHERE ev_class = pg_catalog.to_regclass($1) AND rulename = $2)"
        }
        POLICY => {
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                            WHERE polrelid = pg_catalog.to_regclass($1) AND polname = $2)"
        }
        COMMENT => {
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_description d
                            LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid
                                 AND a.attnum = d.objsubid
                            WHERE d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objoid = pg_catalog.to_regclass($1)
                              AND CASE WHEN $2 = '' THEN d.objsubid = 0
                                       ELSE 'column ' || a.attname = $2 END)"
        }
        // A kind a newer version recorded: assumed there, as nothing here
        // knows how to create it.
        _ => return Ok(true),
    };
    let row = if sql.contains("$2") {
        client.query_one(sql, &[&d.relation, &d.name])
    } else {
        client.query_one(sql, &[&d.relation])
    };
    Ok(row.map_err(pg_err(context))?.get(0))
}

/// The SQL that creates `d` again (foreign keys excepted: the revert adds
/// them, `NOT VALID` when rows written since no longer match).
pub fn create_sql(d: &PgDependent) -> String {
    let with = if d.options.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", d.options)
    };
    let query = || d.definition.trim().trim_end_matches(';').to_string();
    let owner = |what: &str| match &d.owner {
        Some(o) => format!(
            "; ALTER {what} {} OWNER TO {}",
            d.relation,
            super::conn::ident(o)
        ),
        None => String::new(),
    };
    match d.kind.as_str() {
        VIEW => format!(
            "CREATE VIEW {}{with} AS {}{}",
            d.relation,
            query(),
            owner("VIEW")
        ),
        // Its rows come with the `refresh` dependent, after its indexes.
        MATERIALIZED_VIEW => format!(
            "CREATE MATERIALIZED VIEW {}{with} AS {} WITH NO DATA{}",
            d.relation,
            query(),
            owner("MATERIALIZED VIEW")
        ),
        FOREIGN_KEY | CONSTRAINT => format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {}",
            d.relation,
            super::conn::ident(&d.name),
            d.definition
        ),
        _ => d.definition.clone(),
    }
}

/// How a message names `d`.
pub fn describe(d: &PgDependent) -> String {
    let kind = d.kind.replace('-', " ");
    match d.kind.as_str() {
        VIEW | MATERIALIZED_VIEW => format!("{kind} {}", d.relation),
        REFRESH => format!("the rows of materialized view {}", d.relation),
        COMMENT if d.name.is_empty() => format!("the comment on {}", d.relation),
        COMMENT => format!("the comment on {} of {}", d.name, d.relation),
        GRANT => format!("grant {} on {}", d.name, d.relation),
        _ => format!("{kind} {} on {}", d.name, d.relation),
    }
}
