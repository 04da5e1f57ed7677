//! The change capture on PostgreSQL: triggers logging into
//! `ripcord.capture_log`, the seal under `SHARE ROW EXCLUSIVE`, the watch
//! before the commit.

use super::*;

pub(super) fn pg_install(
    client: &mut postgres::Client,
    tables: Option<&BTreeSet<TableName>>,
    timeout: Duration,
) -> Result<Capture> {
    let context = "prepare the change capture";
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = '{}ms'; {PG_SETUP}",
            millis(timeout)
        ))
        .map_err(Error::postgres(context))?;
    let result = (|| -> Result<Capture> {
        // Ordinary tables (partitions included, each with its own trigger);
        // not temporary ones, nor ripcord's own.
        let base = "SELECT c.oid, n.nspname::text, c.relname::text,
                           pg_catalog.format('%I.%I', n.nspname, c.relname)
                    FROM pg_catalog.pg_class c
                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind = 'r' AND c.relpersistence <> 't'
                      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
                      AND n.nspname NOT LIKE 'pg\\_%'";
        let rows = match tables {
            None => client.query(&format!("{base} ORDER BY c.oid"), &[]),
            Some(tables) => {
                let names = quoted(tables);
                // With their partitions and inheritance children: the
                // snapshot takes those too.
                client.query(
                    &format!("{base} AND c.oid IN ({PG_TREES}) ORDER BY c.oid"),
                    &[&names],
                )
            }
        }
        .map_err(Error::postgres("find the tables to capture"))?;
        let mut cap = Capture::default();
        for r in rows {
            let (oid, schema, name, sql): (u32, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let key: Vec<String> = client
                .query(
                    "SELECT a.attname::text FROM pg_catalog.pg_constraint k
                     CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY u(attnum, n)
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
                     WHERE k.conrelid = $1 AND k.contype = 'p' ORDER BY u.n",
                    &[&oid],
                )
                .map_err(Error::postgres(format!("read the primary key of {sql}")))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let args: Vec<String> = key.iter().map(|k| literal(k)).collect();
            let create = format!(
                "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {sql} FOR EACH ROW \
                 EXECUTE PROCEDURE ripcord.capture({});
                 CREATE TRIGGER {} AFTER TRUNCATE ON {sql} FOR EACH STATEMENT \
                 EXECUTE PROCEDURE ripcord.capture()",
                PG_TRIGGERS[0],
                args.join(", "),
                PG_TRIGGERS[1],
            );
            client.batch_execute(&create).map_err(|e| {
                if is_lock_timeout(&e) {
                    lock_refused(
                        &sql,
                        timeout,
                        "install the change capture before the safety snapshot",
                    )
                } else {
                    Error::postgres(format!("install the change capture on {sql}"))(e)
                }
            })?;
            cap.tables.push(Captured {
                name: format!("{schema}.{name}"),
                sql,
                oid,
                key,
                rowid: "",
                log: String::new(),
            });
        }
        Ok(cap)
    })();
    match result {
        Ok(cap) => {
            client
                .batch_execute("COMMIT")
                .map_err(Error::postgres(context))?;
            Ok(cap)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

pub(super) fn pg_seal(
    client: &mut postgres::Client,
    change: &str,
    cap: &Capture,
    timeout: Duration,
) -> Result<()> {
    let before = pg_settings(client, &["lock_timeout"])?;
    client
        .batch_execute(&format!(
            "SELECT pg_catalog.set_config('lock_timeout', '{}ms', true)",
            millis(timeout)
        ))
        .map_err(Error::postgres("set lock_timeout"))?;
    for t in &cap.tables {
        client
            .batch_execute(&format!(
                "LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE",
                t.sql
            ))
            .map_err(|e| {
                if is_lock_timeout(&e) {
                    lock_refused(&format!("table {}", t.sql), timeout, "start the change")
                } else {
                    Error::postgres(format!("lock {}", t.sql))(e)
                }
            })?;
    }
    pg_restore_settings(client, &before)?;
    let names: Vec<&str> = PG_TEXT_SETTINGS.iter().map(|(n, _)| *n).collect();
    let text_before = pg_settings(client, &names)?;
    for (n, v) in PG_TEXT_SETTINGS {
        client
            .execute("SELECT pg_catalog.set_config($1, $2, true)", &[&n, &v])
            .map_err(Error::postgres("set the row text settings"))?;
    }
    for t in &cap.tables {
        let context = format!(
            "capture the rows of {} written during the safety snapshot",
            t.sql
        );
        // Truncations, and whole rows of a table without a key, go as they
        // were logged: the revert leaves out those the snapshot saw.
        client
            .execute(
                "INSERT INTO ripcord.safety_delta (change, table_name, kind, txid, row_text)
                 SELECT $1, $2, kind, txid, row_text FROM ripcord.capture_log
                 WHERE rel = $3 AND kind IN ('T', '+', '-')",
                &[&change, &t.name, &t.oid],
            )
            .map_err(Error::postgres(&context))?;
        if !t.key.is_empty() {
            let on: Vec<String> = t
                .key
                .iter()
                .map(|k| format!("r.{0} = p.{0}", ident(k)))
                .collect();
            // The row now of each logged key, or none: deleted.
            client
                .execute(
                    &format!(
                        "INSERT INTO ripcord.safety_delta (change, table_name, kind, key, row_text)
                         SELECT $1, $2, 'K', k.key,
                                (SELECT r::text FROM {sql} r WHERE {on})
                         FROM (SELECT DISTINCT key FROM ripcord.capture_log
                               WHERE rel = $3 AND kind = 'K') k
                         CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{sql}, k.key) p",
                        sql = t.sql,
                        on = on.join(" AND ")
                    ),
                    &[&change, &t.name, &t.oid],
                )
                .map_err(Error::postgres(&context))?;
        }
        client
            .execute("DELETE FROM ripcord.capture_log WHERE rel = $1", &[&t.oid])
            .map_err(Error::postgres(&context))?;
        // Same lock level as the one held: no wait.
        client
            .batch_execute(&format!(
                "ALTER TABLE ONLY {} DISABLE TRIGGER {}, DISABLE TRIGGER {}",
                t.sql, PG_TRIGGERS[0], PG_TRIGGERS[1]
            ))
            .map_err(Error::postgres(&context))?;
    }
    pg_restore_settings(client, &text_before)
}

pub(super) fn pg_watch(
    client: &mut postgres::Client,
    change: &str,
    cap: &mut Capture,
    tables: &BTreeSet<TableName>,
    timeout: Duration,
) -> Result<Vec<Watched>> {
    let context = "watch the tables after the change";
    let names = quoted(tables);
    // Resolved as the change's session resolves them now.
    let roots: Vec<u32> = client
        .query(
            "SELECT DISTINCT c.oid FROM unnest($1::text[]) n
             JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(n)
             WHERE c.relkind IN ('r', 'p') ORDER BY c.oid",
            &[&names],
        )
        .map_err(Error::postgres(context))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    // Row triggers go on the tables that hold rows: each partition and
    // inheritance child logs under its own oid.
    let leaves: Vec<(u32, String)> = client
        .query(
            &format!(
                "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname)
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'r' AND c.oid IN ({PG_TREES}) ORDER BY c.oid"
            ),
            &[&names],
        )
        .map_err(Error::postgres(context))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    client
        .batch_execute(PG_SETUP)
        .map_err(Error::postgres(context))?;
    let before = pg_settings(client, &["lock_timeout"])?;
    client
        .batch_execute(&format!(
            "SELECT pg_catalog.set_config('lock_timeout', '{}ms', true)",
            millis(timeout)
        ))
        .map_err(Error::postgres("set lock_timeout"))?;
    for (oid, sql) in &leaves {
        // Without arguments the trigger logs whole rows: the fingerprint
        // is of the table as the change left it, key or not.
        client
            .batch_execute(&format!(
                "DROP TRIGGER IF EXISTS {t0} ON {sql}; DROP TRIGGER IF EXISTS {t1} ON {sql};
                 CREATE TRIGGER {t0} AFTER INSERT OR UPDATE OR DELETE ON {sql} FOR EACH ROW \
                 EXECUTE PROCEDURE ripcord.capture();
                 CREATE TRIGGER {t1} AFTER TRUNCATE ON {sql} FOR EACH STATEMENT \
                 EXECUTE PROCEDURE ripcord.capture()",
                t0 = PG_TRIGGERS[0],
                t1 = PG_TRIGGERS[1],
            ))
            .map_err(|e| {
                if is_lock_timeout(&e) {
                    lock_refused(sql, timeout, "watch it after the change")
                } else {
                    Error::postgres(format!("watch {sql} after the change"))(e)
                }
            })?;
        if !cap.watched_oids.contains(oid) {
            cap.watched_oids.push(*oid);
        }
    }
    // A standalone table also gets a statement trigger that marks it
    // written, from the commit until the change is reverted: a rollback
    // with no mark knows the table is as the fingerprint has it and does
    // not read it (see "Rollback without writes" in docs/decisions.md).
    // ALWAYS: it fires under session_replication_role = replica too.
    let standalone: Vec<(u32, String, u32)> = client
        .query(
            "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relfilenode
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = ANY($1::oid[]) AND c.relkind = 'r'
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                               WHERE i.inhrelid = c.oid OR i.inhparent = c.oid)",
            &[&roots],
        )
        .map_err(Error::postgres(context))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for (oid, sql, filenode) in &standalone {
        client
            .batch_execute(&format!(
                "DROP TRIGGER IF EXISTS {t} ON {sql};
                 CREATE TRIGGER {t} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {sql}
                 FOR EACH STATEMENT EXECUTE PROCEDURE ripcord.mark_written();
                 ALTER TABLE {sql} ENABLE ALWAYS TRIGGER {t};
                 DELETE FROM ripcord.written_since WHERE change = {c} AND rel = {oid};
                 INSERT INTO ripcord.written_watch (change, rel, filenode) VALUES ({c}, {oid}, {filenode})
                 ON CONFLICT (change, rel) DO UPDATE SET filenode = EXCLUDED.filenode",
                t = PG_WRITTEN_TRIGGER,
                c = literal(change),
            ))
            .map_err(|e| {
                if is_lock_timeout(&e) {
                    lock_refused(sql, timeout, "watch it after the change")
                } else {
                    Error::postgres(format!("watch {sql} after the change"))(e)
                }
            })?;
    }
    pg_restore_settings(client, &before)?;
    Ok(roots
        .into_iter()
        .map(|oid| Watched {
            oid,
            name: String::new(),
            log: PG_LOG.into(),
        })
        .collect())
}

pub(super) fn pg_settings(
    client: &mut postgres::Client,
    names: &[&str],
) -> Result<Vec<(String, Option<String>)>> {
    names
        .iter()
        .map(|n| {
            let v: Option<String> = client
                .query_one("SELECT pg_catalog.current_setting($1, true)", &[n])
                .map_err(Error::postgres(format!("read setting {n}")))?
                .get(0);
            Ok((n.to_string(), v))
        })
        .collect()
}

pub(super) fn pg_restore_settings(
    client: &mut postgres::Client,
    saved: &[(String, Option<String>)],
) -> Result<()> {
    for (n, v) in saved {
        if let Some(v) = v {
            client
                .execute("SELECT pg_catalog.set_config($1, $2, true)", &[n, v])
                .map_err(Error::postgres(format!("restore setting {n}")))?;
        }
    }
    Ok(())
}

/// Drops ripcord's capture triggers from one table, in a transaction of its
/// own that waits at most `timeout` for the lock.
pub(super) fn pg_drop_triggers(
    client: &mut postgres::Client,
    oid: u32,
    timeout: Duration,
) -> std::result::Result<(), postgres::Error> {
    let name: Option<String> = client
        .query_opt(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )?
        .map(|r| r.get(0));
    let Some(name) = name else { return Ok(()) };
    let sql = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms';
         DROP TRIGGER IF EXISTS {} ON {name}; DROP TRIGGER IF EXISTS {} ON {name}; COMMIT",
        millis(timeout),
        PG_TRIGGERS[0],
        PG_TRIGGERS[1]
    );
    let result = client.batch_execute(&sql);
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK");
    }
    result
}

/// The tables' names quoted for `::regclass`.
fn quoted<'a>(tables: impl IntoIterator<Item = &'a TableName>) -> Vec<String> {
    tables
        .into_iter()
        .map(|t| match &t.schema {
            Some(s) => format!("{}.{}", ident(s), ident(&t.name)),
            None => ident(&t.name),
        })
        .collect()
}
