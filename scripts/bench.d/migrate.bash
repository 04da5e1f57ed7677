# shellcheck shell=bash
# Section `migrate` of scripts/bench (sourced by it; not run on its own).
#
# On one throwaway PostgreSQL server (the pg section's helpers, its own
# cluster under $WORK/migrate):
#  1. a generated sqitch project of $MIG_CHANGES changes, each requiring the
#     one before: `sqitch deploy` + `sqitch revert -y` on a fresh database,
#     `ripcord migrate up` + `ripcord migrate down --to @root` on another;
#     each database's schema `app` is then compared with what the plan creates
#     (or with nothing after the revert), so a no-op cannot pass;
#  2. in the pg section's database (built the same way, BENCH_PG_SCALE) plus
#     a table `big` of 10,000 rows per scale unit (1M at the default scale):
#     a one-change native plan with no down script, `ALTER TABLE big DROP
#     COLUMN payload`; `ripcord migrate up` (takes the safety snapshot of
#     `big`) and `ripcord migrate down --to @root` (puts the column back from
#     it), against `pg_dump -Fd -j2` taken before the change and `createdb +
#     pg_restore -j2` of the whole database. Rows whose payload differs from
#     the one recorded before the change are counted as lost, for both;
#  1b. (part `real`) a realistic sqitch project of 100 changes
#     (gen-sqitch-real.py: roles, grants, default privileges, functions,
#     triggers, RLS, psql variables, destructive changes) on
#     $BENCH_MIGRATE_REAL_MB MB of rows loaded beforehand: sqitch deploy and
#     revert against ripcord up and down on copies of the same database; the
#     catalogs are compared, rows lost by each revert counted, and ripcord's
#     safety snapshots counted by kind;
#  3. SQLite with foreign keys on: 20,000 parents and 300,000 children whose
#     parent column has no index; a change drops a column of the parents and
#     `migrate down` puts it back from the safety snapshot (every parent row
#     is deleted and reloaded, which scanned the children once per row).

MIG_CHANGES=100
# Timed steps run this many times; the report gives the median (tools and
# the server vary by tens of percent from one run to the next).
MIG_RUNS=${BENCH_MIGRATE_RUNS:-3}
MIG_BIG_PER_SCALE=10000 # rows of `big` per pgbench scale unit
# Megabytes of rows the realistic plan (part `real`) works on.
MIG_REAL_MB=${BENCH_MIGRATE_REAL_MB:-1000}

# What the schema `app` of DB holds: "key<TAB>count" lines, the keys of the
# generator's expectation (gen-sqitch-project.py).
mig_fingerprint() { # DB
    pg_sql "$1" -F $'\t' <<'SQL'
SELECT 'schema', count(*) FROM pg_namespace WHERE nspname = 'app';
SELECT 'tables', count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'app' AND c.relkind = 'r';
SELECT 'views', count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'app' AND c.relkind = 'v';
SELECT 'indexes', count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'app' AND c.relkind = 'i';
SELECT 'columns', count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'app' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped;
SELECT 'constraints', count(*) FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
    WHERE n.nspname = 'app';
SELECT 'rows', coalesce(sum((xpath('/row/n/text()', query_to_xml(
           format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint), 0)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'app' AND c.relkind = 'r';
SQL
}

# Records "TOOL STEP-check": the schema `app` of DB is what EXPECTED says.
mig_check_schema() { # TOOL STEP DB EXPECTED
    local tool=$1 step=$2 db=$3 expected=$4 status=ok
    local got=$LOGS/$tool-$step-check.log
    if ! mig_fingerprint "$db" >"$got" 2>&1 || ! diff -u "$expected" "$got" >"$got.diff"; then
        status=failed
        log "$tool: after $step, schema app of $db is not as expected (log: $got.diff)"
    fi
    printf '%s\t%s-check\t0\t0\t%s\n' "$tool" "$step" "$status" >>"$RESULTS"
}

mig_ripcord_config() { # FILE DB PLAN-DIR
    cat >"$1" <<TOML
[repository]
url = "$PG_DIR/ripcord/repo"

[targets.app]
kind = "postgres"
url = "$PG_URL/$2"

[migrations]
target = "app"
dir = "$3"
TOML
}

# Part 1: the same sqitch plan deployed and reverted by sqitch and by ripcord.
mig_plan_part() {
    local proj=$PG_DIR/sqitch
    python3 "$ROOT/scripts/bench.d/gen-sqitch-project.py" "$proj" "$MIG_CHANGES" "$PG_BIN/psql" \
        >"$PG_DIR/expected-up.tsv"
    sed 's/\t.*/\t0/' "$PG_DIR/expected-up.tsv" >"$PG_DIR/expected-down.tsv"
    pg_meta plan_changes "$MIG_CHANGES"
    pg_meta sqitch_version "$(sqitch --version)"

    pg_sql postgres -c "CREATE DATABASE plan_sqitch" -c "CREATE DATABASE plan_ripcord"
    local uri=db:pg://postgres@127.0.0.1:$PG_PORT/plan_sqitch
    # One repository for both parts, made with the first part's configuration.
    local cfg=$PG_DIR/ripcord/plan.toml
    mig_ripcord_config "$cfg" plan_ripcord "$proj"
    (cd "$PG_DIR/ripcord" && ripcord --config "$cfg" init) >"$LOGS/ripcord-init.log" 2>&1 ||
        die "ripcord init failed (log: $LOGS/ripcord-init.log)"

    # The tools take turns, so that a slow moment of the machine hits both.
    local run
    for run in $(seq "$MIG_RUNS"); do
        log "plan of $MIG_CHANGES changes: run $run of $MIG_RUNS"
        pg_timed sqitch deploy sqitch deploy --target "$uri"
        mig_check_schema sqitch deploy plan_sqitch "$PG_DIR/expected-up.tsv"
        pg_timed sqitch revert sqitch revert -y --target "$uri"
        mig_check_schema sqitch revert plan_sqitch "$PG_DIR/expected-down.tsv"

        pg_timed ripcord up "${STDOUT_TO[@]}" "$PG_DIR/plan-up.json" \
            ripcord --config "$cfg" --json migrate up
        mig_check_schema ripcord up plan_ripcord "$PG_DIR/expected-up.tsv"
        (ripcord --config "$cfg" --json migrate status >"$PG_DIR/plan-status-up.json" 2>"$LOGS/plan-status-up.log") || true
        pg_timed ripcord down "${STDOUT_TO[@]}" "$PG_DIR/plan-down.json" \
            ripcord --config "$cfg" --json migrate down --to @root
        mig_check_schema ripcord down plan_ripcord "$PG_DIR/expected-down.tsv"
        (ripcord --config "$cfg" --json migrate status >"$PG_DIR/plan-status-down.json" 2>"$LOGS/plan-status-down.log") || true
    done
}

# Part `real`: a realistic sqitch project (gen-sqitch-real.py) on ~1 GB of
# loaded data.
#
# What the plan acts on is loaded before either tool runs: setup.sql fills the
# schema `shop` of a template database once (untimed), and every run deploys
# onto a fresh copy of it (CREATE DATABASE … TEMPLATE, untimed). That is how
# a real project's migrations meet its data, and it keeps the bulk load out
# of both tools' times; the data the changes themselves read or write (the
# DELETE, UPDATE, DROP TABLE, the new columns) is in both.

# The catalog of DB outside the tools' own schemas, as sorted lines: what
# both tools must leave alike. Columns are compared by name, not position;
# privileges as they are in effect (no ACL and the default ACL are alike).
mig_real_signature() { # DB
    pg_sql "$1" -F $'\t' <<'SQL' | LC_ALL=C sort
WITH ns AS (SELECT oid, nspname FROM pg_namespace
            WHERE nspname NOT IN ('sqitch', 'ripcord', 'information_schema') AND nspname NOT LIKE 'pg\_%')
SELECT 'schema', nspname, coalesce(n.nspacl, acldefault('n', n.nspowner))::text, coalesce(obj_description(n.oid, 'pg_namespace'), ''), ''
    FROM pg_namespace n JOIN ns USING (nspname)
UNION ALL
SELECT 'rel', ns.nspname, c.relname, c.relkind::text || ' rls=' || c.relrowsecurity,
       coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))::text
           || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '')
    FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind <> 't'
UNION ALL
SELECT 'col', ns.nspname, c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull || ' default='
           || coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
       coalesce(col_description(c.oid, a.attnum), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'p', 'c')
UNION ALL
SELECT 'con', ns.nspname, coalesce(k.conrelid::regclass::text, '') || coalesce(k.contypid::regtype::text, ''),
       k.conname, pg_get_constraintdef(k.oid)
    FROM pg_constraint k JOIN ns ON ns.oid = k.connamespace
UNION ALL
SELECT 'index', schemaname, indexname, indexdef, '' FROM pg_indexes WHERE schemaname IN (SELECT nspname FROM ns)
UNION ALL
SELECT 'function', ns.nspname, p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)),
       coalesce(p.proacl, acldefault('f', p.proowner))::text
    FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
UNION ALL
SELECT 'trigger', t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid), ''
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON ns.oid = c.relnamespace
    JOIN pg_proc f ON f.oid = t.tgfoid JOIN pg_namespace fn ON fn.oid = f.pronamespace
    WHERE NOT t.tgisinternal AND fn.nspname <> 'ripcord' -- ripcord's own marks
UNION ALL
SELECT 'policy', schemaname, tablename || '.' || policyname, cmd || ' ' || roles::text,
       coalesce(qual, '') || ' / ' || coalesce(with_check, '')
    FROM pg_policies WHERE schemaname IN (SELECT nspname FROM ns)
UNION ALL
SELECT 'view', schemaname, viewname, md5(definition), '' FROM pg_views WHERE schemaname IN (SELECT nspname FROM ns)
UNION ALL
SELECT 'type', ns.nspname, t.typname, t.typtype::text,
       coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid), '')
    FROM pg_type t JOIN ns ON ns.oid = t.typnamespace WHERE t.typtype IN ('e', 'd') OR (t.typtype = 'c'
        AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
UNION ALL
SELECT 'default-acl', coalesce(defaclnamespace::regnamespace::text, ''), defaclobjtype::text,
       defaclacl::text, '' FROM pg_default_acl
UNION ALL
SELECT 'role', r.rolname, coalesce(string_agg(g.rolname, ',' ORDER BY g.rolname), ''), '', ''
    FROM pg_roles r LEFT JOIN pg_auth_members m ON m.member = r.oid LEFT JOIN pg_roles g ON g.oid = m.roleid
    WHERE r.rolname LIKE 'shop\_%' GROUP BY r.rolname
UNION ALL
SELECT 'rows', ns.nspname, c.relname, (xpath('/row/n/text()', query_to_xml(
           format('SELECT count(*) AS n FROM %I.%I', ns.nspname, c.relname), false, true, '')))[1]::text, ''
    FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind = 'r';
SQL
}

# Writes one sorted line "table<TAB>md5(row)" per row of every loaded table
# of DB to FILE (a missing table contributes nothing).
mig_real_rows() { # DB FILE
    local t
    : >"$2.unsorted"
    for t in $MIG_REAL_TABLES; do
        pg_sql "$1" -c "COPY (SELECT '$t', md5(r::text) FROM shop.$t r) TO STDOUT" >>"$2.unsorted" 2>/dev/null || true
    done
    LC_ALL=C sort -S 25% -o "$2" "$2.unsorted"
    rm -f "$2.unsorted"
}

# Records "TOOL STEP-check" (DB's catalog is EXPECTED's, the row counts of
# the loaded tables left out: they are what ROWS-KEY counts) and the meta key
# ROWS-KEY: rows of the loaded tables in the template that DB no longer holds
# as they were.
mig_real_check() { # TOOL STEP DB EXPECTED ROWS-KEY
    local tool=$1 step=$2 db=$3 expected=$4 key=$5 status=ok got=$LOGS/$1-$2-check.log lost
    if ! mig_real_signature "$db" >"$got" 2>&1 ||
        ! diff -u <(grep -v $'^rows\tshop\t' "$expected") <(grep -v $'^rows\tshop\t' "$got") >"$got.diff"; then
        status=failed
        log "$tool: after $step, the catalog of $db is not as expected (log: $got.diff)"
    fi
    printf '%s\t%s-check\t0\t0\t%s\n' "$tool" "$step" "$status" >>"$RESULTS"
    mig_real_rows "$db" "$PG_DIR/real-rows-after.txt"
    lost=$(LC_ALL=C comm -23 "$PG_DIR/real-rows-before.txt" "$PG_DIR/real-rows-after.txt" | wc -l)
    pg_meta "$key" "$lost"
    rm -f "$PG_DIR/real-rows-after.txt"
}

# A fresh copy of the loaded template, named DB.
mig_real_copy() { # DB
    pg_drop "$1"
    pg_sql postgres -c "CREATE DATABASE $1 TEMPLATE real_base STRATEGY FILE_COPY"
}

# Counts what `migrate up --json` snapshotted: "DATABASE TABLES".
mig_real_snapshots() { # JSON
    python3 - "$1" <<'PY'
import json, sys
try:
    ch = json.load(open(sys.argv[1]))["changes"]
except (OSError, ValueError, KeyError, TypeError):
    print("- -")
    sys.exit()
db = sum(1 for c in ch if c.get("snapshot") and c["snapshot_scope"]["scope"] == "database")
tables = sum(1 for c in ch if c.get("snapshot") and c["snapshot_scope"]["scope"] == "tables")
print(db, tables)
PY
}

mig_real_part() {
    local proj=$PG_DIR/real
    [[ $MIG_REAL_MB =~ ^[0-9]+$ ]] || die "BENCH_MIGRATE_REAL_MB must be a whole number of megabytes, not $MIG_REAL_MB"
    python3 "$ROOT/scripts/bench.d/gen-sqitch-real.py" "$proj" "$MIG_REAL_MB" "$PG_BIN/psql" >"$PG_DIR/real.tsv"
    local set_args=() kv
    while read -r kv; do set_args+=(--set "$kv"); done < <(awk -F'\t' '$1 == "set" { print $2 }' "$PG_DIR/real.tsv")
    MIG_REAL_TABLES=$(awk -F'\t' '$1 ~ /^rows_/ { sub(/^rows_/, "", $1); print $1 }' "$PG_DIR/real.tsv" | tr '\n' ' ')
    pg_meta real_changes "$(awk -F'\t' '$1 == "changes" { print $2 }' "$PG_DIR/real.tsv")"
    pg_meta real_mb "$MIG_REAL_MB"
    pg_meta sqitch_version "$(sqitch --version)"

    log "loading ~$MIG_REAL_MB MB into the template database real_base"
    pg_sql postgres -c "CREATE DATABASE real_base"
    pg_sql real_base -f "$proj/setup.sql" >"$LOGS/real-setup.log" 2>&1 ||
        die "loading the data failed (log: $LOGS/real-setup.log)"
    pg_meta real_db_bytes "$(pg_sql real_base -c "SELECT pg_database_size('real_base')")"
    pg_meta real_data_bytes "$(pg_sql real_base -c "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'shop' AND c.relkind = 'r'")"
    pg_sql real_base -F $'\t' -c "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'shop' AND c.relkind = 'r'
        ORDER BY 3 DESC" >"$PG_DIR/real-tables.tsv"
    mig_real_rows real_base "$PG_DIR/real-rows-before.txt"
    mig_real_signature real_base >"$PG_DIR/real-before.sig"

    local cfg=$PG_DIR/ripcord/real.toml
    mig_ripcord_config "$cfg" real_ripcord "$proj"
    if [[ ! -d $PG_DIR/ripcord/repo ]]; then
        (cd "$PG_DIR/ripcord" && ripcord --config "$cfg" init) >"$LOGS/ripcord-init.log" 2>&1 ||
            die "ripcord init failed (log: $LOGS/ripcord-init.log)"
    fi
    local uri=db:pg://postgres@127.0.0.1:$PG_PORT/real_sqitch run snaps
    for run in $(seq "$MIG_RUNS"); do
        log "realistic plan: run $run of $MIG_RUNS"
        mig_real_copy real_sqitch
        pg_timed sqitch real-deploy sqitch --chdir "$proj" deploy --target "$uri" "${set_args[@]}"
        mig_real_signature real_sqitch | grep -v $'^rows\tshop\t' >"$PG_DIR/real-sqitch-up.sig"
        pg_timed sqitch real-revert sqitch --chdir "$proj" revert -y --target "$uri" "${set_args[@]}"
        mig_real_check sqitch real-revert real_sqitch "$PG_DIR/real-before.sig" sqitch_real_rows_lost
        pg_drop real_sqitch

        # The least any tool can take: the same scripts, one psql session,
        # no tracking, verify or snapshot.
        mig_real_copy real_floor
        pg_timed psql real-floor-deploy "$PG_BIN/psql" "${PG_CONN[@]}" -X -q -d real_floor -f "$proj/floor-deploy.sql"
        pg_timed psql real-floor-revert "$PG_BIN/psql" "${PG_CONN[@]}" -X -q -d real_floor -f "$proj/floor-revert.sql"
        pg_drop real_floor

        mig_real_copy real_ripcord
        pg_timed ripcord real-up "${STDOUT_TO[@]}" "$PG_DIR/real-up.json" \
            ripcord --config "$cfg" --json migrate up "${set_args[@]}"
        # The schema after the apply: as sqitch left it (row counts of the
        # loaded tables left out, they are checked below).
        mig_real_signature real_ripcord | grep -v $'^rows\tshop\t' >"$PG_DIR/real-ripcord-up.sig"
        if diff -u "$PG_DIR/real-sqitch-up.sig" "$PG_DIR/real-ripcord-up.sig" >"$LOGS/real-up-check.diff"; then
            printf 'ripcord\treal-up-check\t0\t0\tok\n' >>"$RESULTS"
        else
            printf 'ripcord\treal-up-check\t0\t0\tfailed\n' >>"$RESULTS"
            log "ripcord: after up, the catalog differs from sqitch's (log: $LOGS/real-up-check.diff)"
        fi
        read -r -a snaps < <(mig_real_snapshots "$PG_DIR/real-up.json")
        pg_meta real_db_snapshots "${snaps[0]}"
        pg_meta real_table_snapshots "${snaps[1]}"
        pg_timed ripcord real-down "${STDOUT_TO[@]}" "$PG_DIR/real-down.json" \
            ripcord --config "$cfg" --json migrate down --to @root "${set_args[@]}"
        mig_real_check ripcord real-down real_ripcord "$PG_DIR/real-before.sig" ripcord_real_rows_lost
        pg_drop real_ripcord
    done
    rm -f "$PG_DIR/real-rows-before.txt"
}

# Writes "id<TAB>md5(payload)" for every row of big in DB to FILE; an empty
# FILE when the column (or the table) is missing.
mig_payloads() { # DB FILE
    if ! pg_sql "$1" -c "COPY (SELECT id, md5(payload) FROM big) TO STDOUT" >"$2" 2>"$2.err"; then
        : >"$2"
    fi
}

# Records "TOOL STEP-check" and the meta key TOOL_rows_lost: rows of big in
# DB whose payload is missing or differs from the one recorded before the
# change.
mig_check_payloads() { # TOOL STEP DB
    local tool=$1 step=$2 db=$3 lost status=ok
    mig_payloads "$db" "$PG_DIR/payloads-$tool.tsv"
    lost=$(python3 - "$PG_DIR/payloads-before.tsv" "$PG_DIR/payloads-$tool.tsv" <<'PY'
import sys
after = {}
for line in open(sys.argv[2]):
    k, _, v = line.rstrip("\n").partition("\t")
    after[k] = v
lost = 0
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("\t")
    if after.get(k) != v:
        lost += 1
print(lost)
PY
    )
    rm -f "$PG_DIR/payloads-$tool.tsv"
    pg_meta "${tool}_rows_lost" "$lost"
    if [[ $lost != 0 ]]; then
        status=failed
        log "$tool: $lost rows of big lost their payload (see $PG_DIR/payloads-$tool.tsv.err)"
    fi
    printf '%s\t%s-check\t0\t0\t%s\n' "$tool" "$step" "$status" >>"$RESULTS"
}

mig_has_payload() { # DB
    [[ $(pg_sql "$1" -c "SELECT count(*) FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = 'big' AND column_name = 'payload'") == 1 ]]
}

# Part 2: rolling back DROP COLUMN on big, ripcord's safety snapshot against
# a whole-database pg_restore.
mig_drop_part() {
    local rows=$((PG_SCALE * MIG_BIG_PER_SCALE))
    log "adding table big ($rows rows) to database bench"
    pg_sql bench -v rows="$rows" <<'SQL'
CREATE TABLE big (
    id bigint PRIMARY KEY,
    account int NOT NULL,
    payload text NOT NULL
);
INSERT INTO big
SELECT i, 1 + (i::bigint * 7919) % 100000, md5(i::text) || ' ' || md5((i::bigint * 31)::text) || ' ' || md5((i::bigint * 97)::text)
FROM generate_series(1, :rows) i;
VACUUM ANALYZE big;
SQL
    pg_meta big_rows "$rows"
    pg_meta big_bytes "$(pg_sql bench -c "SELECT pg_total_relation_size('big')")"
    pg_meta db_bytes_big "$(pg_sql bench -c "SELECT pg_database_size('bench')")"
    mig_payloads bench "$PG_DIR/payloads-before.tsv"
    [[ $(wc -l <"$PG_DIR/payloads-before.tsv") == "$rows" ]] || die "could not record the payloads of big"

    local plan=$PG_DIR/dropcol
    mkdir -p "$plan/0001_drop_payload"
    printf '%s\n' '-- No down script: the way back is the safety snapshot of big.' \
        'ALTER TABLE big DROP COLUMN payload;' >"$plan/0001_drop_payload/up.sql"
    local cfg=$PG_DIR/ripcord/drop.toml
    mig_ripcord_config "$cfg" bench "$plan"
    # The plan part made the repository, unless it was left out.
    if [[ ! -d $PG_DIR/ripcord/repo ]]; then
        (cd "$PG_DIR/ripcord" && ripcord --config "$cfg" init) >"$LOGS/ripcord-init.log" 2>&1 ||
            die "ripcord init failed (log: $LOGS/ripcord-init.log)"
    fi

    # The baseline's backup, taken before the change.
    local dump=$PG_DIR/pg_dump/bench.dir
    pg_timed pg_dump Fd "$PG_BIN/pg_dump" "${PG_CONN[@]}" -Fd -j "$PG_JOBS" -f "$dump" bench
    pg_meta dump_fd_bytes "$(dir_bytes "$dump")"

    local run status
    for run in $(seq "$MIG_RUNS"); do
        log "DROP COLUMN and its rollback: run $run of $MIG_RUNS"
        pg_timed ripcord drop-up "${STDOUT_TO[@]}" "$PG_DIR/drop-up.json" \
            ripcord --config "$cfg" --json migrate up
        status=ok
        if mig_has_payload bench; then
            status=failed
            log "ripcord: big.payload is still there after migrate up"
        fi
        printf 'ripcord\tdrop-up-check\t0\t0\t%s\n' "$status" >>"$RESULTS"
        [[ $run == 1 ]] && pg_meta repo_bytes_drop "$(dir_bytes "$PG_DIR/ripcord/repo")"

        pg_timed ripcord drop-down "${STDOUT_TO[@]}" "$PG_DIR/drop-down.json" \
            ripcord --config "$cfg" --json migrate down --to @root
        # Rows lost only mean something when the column was dropped.
        if [[ $status == ok ]]; then mig_check_payloads ripcord drop-down bench; fi

        # shellcheck disable=SC2016
        pg_timed pg_restore restore bash -c '"$1/createdb" -h 127.0.0.1 -p "$2" -U postgres r2 &&
            exec "$1/pg_restore" -h 127.0.0.1 -p "$2" -U postgres -j "$3" -d r2 "$4"' \
            createdb-pg_restore "$PG_BIN" "$PG_PORT" "$PG_JOBS" "$dump"
        mig_check_payloads pg_restore restore r2
        pg_drop r2
    done
    rm -rf "$dump"
}

# Part 3: a SQLite revert of a parent table whose children have no index
# on their foreign key column.
MIG_FK_PARENTS=20000
MIG_FK_CHILDREN=300000
mig_sqlite_fk_part() {
    local dir=$PG_DIR/sqlite-fk plan=$PG_DIR/sqlite-fk/plan
    mkdir -p "$plan/0001_drop_note" "$dir/repo"
    python3 - "$dir/app.db" "$MIG_FK_PARENTS" "$MIG_FK_CHILDREN" <<'PY'
import sqlite3, sys
db, parents, children = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db)
c.executescript(f"""
PRAGMA foreign_keys = ON;
CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT);
CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parents (id), v INTEGER);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {parents})
INSERT INTO parents SELECT i, 'p' || i, 'note ' || i FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {children})
INSERT INTO children SELECT i, 1 + i % {parents}, i FROM n;
""")
c.commit()
PY
    printf '%s\n' 'ALTER TABLE parents DROP COLUMN note;' >"$plan/0001_drop_note/up.sql"
    local cfg=$dir/ripcord.toml
    cat >"$cfg" <<TOML
[repository]
url = "$dir/repo"

[targets.app]
kind = "sqlite"
path = "$dir/app.db"

[migrations]
target = "app"
dir = "$plan"
TOML
    ripcord --config "$cfg" init >"$LOGS/sqlite-fk-init.log" 2>&1 || die "ripcord init failed (log: $LOGS/sqlite-fk-init.log)"
    pg_meta fk_parents "$MIG_FK_PARENTS"
    pg_meta fk_children "$MIG_FK_CHILDREN"
    local run restored
    for run in $(seq "$MIG_RUNS"); do
        log "SQLite foreign-key revert: run $run of $MIG_RUNS"
        timed ripcord fk-up ripcord --config "$cfg" migrate up
        timed ripcord fk-down ripcord --config "$cfg" migrate down --to @root
        restored=$(python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("SELECT count(*) FROM parents WHERE note = '"'"'note '"'"' || id").fetchone()[0])' "$dir/app.db")
        printf 'ripcord\tfk-down-check\t0\t0\t%s\n' \
            "$([[ $restored == "$MIG_FK_PARENTS" ]] && echo ok || echo failed)" >>"$RESULTS"
    done
}

# Part 4: the writer's longest wait while `migrate up` protects a table of
# N rows (the test a_writer_is_not_stalled_for_the_length_of_the_safety_snapshot,
# release build, on the test harness's own PostgreSQL cluster and a SQLite
# file in WAL mode): a writer updates, inserts and deletes rows, one
# statement per transaction, while the change drops a column behind a
# safety snapshot; the figure is its longest transaction.
MIG_STALL_ROWS=${BENCH_STALL_ROWS:-1000000 5000000}
mig_stall_part() {
    local rows out
    for rows in $MIG_STALL_ROWS; do
        log "writer stall during migrate up: $rows rows"
        out=$LOGS/stall-$rows.log
        if ! RIPCORD_STALL_ROWS=$rows cargo test --release --locked -q -p ripcord-cli --test migrate_window \
            a_writer_is_not_stalled -- --nocapture >"$out" 2>&1; then
            log "the stall test failed at $rows rows (log: $out)"
        fi
        # "Pg, 1000000 rows: migrate up took 9.5s; the writer's longest transaction 79.9ms over 1207 commits"
        python3 - "$out" "$rows" >>"$RESULTS" <<'PY'
import re, sys
units = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
def secs(t):
    m = re.fullmatch(r"([0-9.]+)(s|ms|µs|us|ns)", t)
    return float(m.group(1)) * units[m.group(2)]
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.match(r"(Pg|Sqlite), (\d+) rows: migrate up took (\S+); the writer's longest transaction (\S+) over (\d+) commits", line)
    if m:
        kind = m.group(1).lower()
        print(f"ripcord\tstall-{kind}-{sys.argv[2]}\t{secs(m.group(4)):.4f}\t0\tok")
        print(f"ripcord\tstallup-{kind}-{sys.argv[2]}\t{secs(m.group(3)):.4f}\t0\tok")
PY
    done
}

# Renders its part of the report into $WORK/migrate/report.md.
migrate_section() {
    [[ $PG_SCALE =~ ^[1-9][0-9]*$ ]] || die "BENCH_PG_SCALE must be a whole number, not $PG_SCALE"
    if ! command -v sqitch >/dev/null || ! perl -MDBD::Pg -e 1 2>/dev/null; then
        log "installing sqitch and DBD::Pg"
        DEBIAN_FRONTEND=noninteractive apt_install sqitch libdbd-pg-perl
    fi
    pg_find_bin
    # The pg section's helpers work on PG_DIR; this section has its own.
    # shellcheck disable=SC2034 # PG_CLUSTER and RUN_DIR are read by those helpers
    PG_DIR=$WORK/migrate PG_CLUSTER=$WORK/migrate/cluster PG_META=$WORK/migrate/meta.tsv
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if pg_running; then
        log "stopping the cluster left by an interrupted run"
        pg_stop
    fi
    rm -rf "${PG_DIR:?}"
    # shellcheck disable=SC2034
    RUN_DIR=$PG_DIR RESULTS=$PG_DIR/results.tsv LOGS=$PG_DIR/logs
    mkdir -p "$LOGS" "$PG_DIR/ripcord" "$PG_DIR/pg_dump"
    : >"$RESULTS"
    : >"$PG_META"
    export SQITCH_FULLNAME=Bench SQITCH_EMAIL=bench@example.com

    pg_start
    pg_meta ripcord_version "$(tool_version ripcord)"
    pg_meta server_version "$(pg_sql postgres -c 'SHOW server_version')"
    pg_meta pg_dump_version "$("$PG_BIN/pg_dump" --version)"

    # BENCH_MIGRATE_PARTS picks parts (default: all), e.g. "fk stall".
    local parts=${BENCH_MIGRATE_PARTS:-plan real drop fk stall}
    [[ " $parts " == *" plan "* ]] && mig_plan_part
    [[ " $parts " == *" real "* ]] && mig_real_part
    if [[ " $parts " == *" drop "* ]]; then
        pg_load_data
        mig_drop_part
    fi
    [[ " $parts " == *" fk "* ]] && mig_sqlite_fk_part
    [[ " $parts " == *" stall "* ]] && mig_stall_part

    pg_cleanup
    trap - EXIT INT TERM

    local report=$PG_DIR/report.md
    MIG_RUNS=$MIG_RUNS CACHE_STATE=$CACHE_STATE PG_SCALE=$PG_SCALE PG_JOBS=$PG_JOBS PG_DIR=$PG_DIR PG_META=$PG_META \
        RESULTS=$RESULTS REPORT=$report render_migrate_report
}

render_migrate_report() {
    python3 - <<'PY'
import datetime
import json
import os

env = os.environ
d = env["PG_DIR"]
jobs = env["PG_JOBS"]
scale = int(env["PG_SCALE"])

# Steps run several times: the median time, the largest peak RSS, and ok
# only when every run was.
runs = {}
for line in open(env["RESULTS"]):
    tool, step, secs, rss, status = line.rstrip("\n").split("\t")
    runs.setdefault((tool, step), []).append((float(secs), int(rss), status == "ok"))
results = {}
for key, rs in runs.items():
    times = sorted(r[0] for r in rs)
    results[key] = {
        "s": times[len(times) // 2],
        "rss": max(r[1] for r in rs),
        "ok": all(r[2] for r in rs),
        "n": len(rs),
        "all": [r[0] for r in rs],
    }
meta = {}
for line in open(env["PG_META"]):
    k, _, v = line.rstrip("\n").partition("\t")
    # Rows lost, written once per run: the worst run counts.
    if k.endswith("_rows_lost") and k in meta and meta[k].isdigit() and v.isdigit():
        v = str(max(int(meta[k]), int(v)))
    meta[k] = v


def num(key):
    try:
        return int(meta.get(key, ""))
    except ValueError:
        return None


def first_line(path, key):
    try:
        for line in open(path):
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def fmt_mb(b):
    if b is None:
        return "n/a"
    return f"{b / 1e6:,.2f} MB" if b < 10e6 else f"{b / 1e6:,.1f} MB"


def get(tool, step):
    r = results.get((tool, step))
    return r if r and r["ok"] else None


def check(tool, step):
    r = results.get((tool, step + "-check"))
    return None if r is None else r["ok"]


def ratio(a, b):
    """Time of step A divided by the time of step B (> 1: B is faster)."""
    a, b = get(*a), get(*b)
    if not a or not b or b["s"] <= 0:
        return None
    return a["s"] / b["s"]


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.1f}x"


expected = {}
try:
    for line in open(os.path.join(d, "expected-up.tsv")):
        k, _, v = line.rstrip("\n").partition("\t")
        expected[k] = int(v)
except (OSError, ValueError):
    pass

label = {True: "as expected", False: "**NOT as expected**", None: "not checked"}
changes = num("plan_changes") or 0
mem_kib = int(first_line("/proc/meminfo", "MemTotal").split()[0])
out = []
w = out.append
w("<!-- bench:migrate:start -->")
w("## Migrations")
w("")
w("ripcord applying and rolling back migrations, compared with sqitch on the same plan and with `pg_restore`")
w("for getting dropped data back, on one throwaway PostgreSQL server. Generated by `scripts/bench`")
w("(`BENCH_SECTIONS=migrate` runs only this part); do not edit by hand.")
w("")
w(f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
w(f"- Machine: {first_line('/proc/cpuinfo', 'model name')}, {os.cpu_count()} logical cores, "
  f"{mem_kib / 1024 / 1024:.1f} GiB RAM")
w(f"- Server: PostgreSQL {meta.get('server_version', 'unknown')}, started by the script with the pg section's settings")
w(f"- Clients: {meta.get('ripcord_version', 'ripcord')}; {meta.get('sqitch_version', 'sqitch')} (DBD::Pg, psql);"
  f" {meta.get('pg_dump_version', 'pg_dump')}; all connect over TCP to 127.0.0.1")
w("- Before every timed step: `CHECKPOINT`, a server restart (empty shared_buffers), and "
  + ("the page cache dropped" if env["CACHE_STATE"] == "cold" else
     "**no** page cache drop (/proc/sys/vm/drop_caches was not writable: the cache was warm)"))
w(f"- Every timed step ran {env.get('MIG_RUNS', '1')} times, the tools taking turns; the tables give the median time, "
  "the largest peak RSS, and the rows lost in the worst run")
w("- Peak RSS is the client's (`/usr/bin/time -f %M`; for `pg_dump -j`/`pg_restore -j` the largest process),"
  " not the server's")
w("")
w(f"### A plan of {changes} changes")
w("")
if expected:
    w(f"A generated sqitch project (`sqitch.conf`, `sqitch.plan`, `deploy/`, `revert/`, `verify/` as `sqitch add`")
    w(f"writes them: deploy and revert scripts in `BEGIN; … COMMIT;`, verify scripts a `SELECT` in `BEGIN; …")
    w(f"ROLLBACK;`). {changes} changes, each requiring the one before: `CREATE SCHEMA app`, then in turn")
    w("`CREATE TABLE`, `ALTER TABLE … ADD COLUMN` (plain, then a foreign key to the previous table), `CREATE INDEX`,")
    w(f"`INSERT` of 5 rows and `CREATE VIEW`; in all {expected.get('tables', 0)} tables, {expected.get('views', 0)} views,")
    w(f"{expected.get('indexes', 0)} indexes, {expected.get('columns', 0)} columns, {expected.get('constraints', 0)}"
      f" constraints and {expected.get('rows', 0)} rows in the schema `app`.")
w("sqitch works on one fresh database, ripcord on another, from the same folder (ripcord reads the sqitch")
w("format itself). sqitch runs with its defaults, which do not run the verify scripts (no `--verify`); ripcord")
w("runs each change's verify script after its deploy script, and takes the safety snapshots it takes before any")
w("change that touches existing tables: both are in its times.")
w("")
w("| step | tool | command | seconds | peak RSS MiB | schema `app` afterwards |")
w("| --- | --- | --- | ---: | ---: | --- |")
rows = [
    ("Apply all", "sqitch", "deploy", "`sqitch deploy --target db:pg://…/plan_sqitch`"),
    ("", "ripcord", "up", "`ripcord migrate up`"),
    ("Revert all", "sqitch", "revert", "`sqitch revert -y --target db:pg://…/plan_sqitch`"),
    ("", "ripcord", "down", "`ripcord migrate down --to @root`"),
]
for title, tool, step, cmd in rows:
    r = get(tool, step)
    c = label[check(tool, step)]
    if step in ("revert", "down") and check(tool, "deploy" if step == "revert" else "up") is not True:
        c = "n/a: the apply did not get there"
    if r:
        w(f"| {title} | {tool} | {cmd} | {r['s']:.2f} | {r['rss'] / 1024:,.0f} | {c} |")
    else:
        w(f"| {title} | {tool} | {cmd} | failed | | {c} |")
w("")
w("\"As expected\": after applying, the schema `app` holds exactly the objects and rows the plan creates (counts")
w("of tables, views, indexes, columns, constraints and rows); after reverting, it is gone.")
w("")


def load(name):
    try:
        return json.load(open(os.path.join(d, name)))
    except (OSError, ValueError):
        return None


def status_counts(name):
    st = load(name)
    try:
        return ", ".join(f"{v} {k}" for k, v in st["counts"].items() if v)  or "nothing recorded"
    except (TypeError, KeyError, AttributeError):
        return "unreadable"


def inside(name, what):
    """What ripcord's own --json output says about a run: changes, safety snapshots, time in the scripts."""
    j = load(name)
    try:
        ch = j["changes"]
        snaps = sum(1 for c in ch if c.get("snapshot"))
        verified = sum(1 for c in ch if c.get("verify"))
        ms = sum(c.get("duration_ms") or 0 for c in ch)
    except (TypeError, KeyError, AttributeError):
        return None
    how = {}
    for c in ch:
        if c.get("how"):
            how[c["how"]] = how.get(c["how"], 0) + 1
    parts = [f"{len(ch)} change{'s' if len(ch) != 1 else ''} {what}"]
    if how:
        parts.append(", ".join(f"{v} by {k}" for k, v in sorted(how.items())))
    if what == "applied":
        parts.append(f"{snaps} safety snapshot{'s' if snaps != 1 else ''} taken, {verified} verify"
                     f" script{'s' if verified != 1 else ''} run")
    parts.append(f"{ms / 1000:.2f} s in the changes themselves (sum of `duration_ms`)")
    return "; ".join(parts)


for name, what, st in (("plan-up.json", "applied", "plan-status-up.json"),
                       ("plan-down.json", "reverted", "plan-status-down.json")):
    info = inside(name, what)
    if info:
        w(f"- `ripcord migrate {'up' if what == 'applied' else 'down'} --json`: {info}; `migrate status`"
          f" afterwards: {status_counts(st)}.")
w("")
r_up = ratio(("sqitch", "deploy"), ("ripcord", "up"))
r_down = ratio(("sqitch", "revert"), ("ripcord", "down"))
w(f"sqitch time / ripcord time: apply **{fmt_ratio(r_up)}**, revert **{fmt_ratio(r_down)}**.")
w("")
real_changes = num("real_changes")
r_real_up = ratio(("sqitch", "real-deploy"), ("ripcord", "real-up"))
r_real_down = ratio(("sqitch", "real-revert"), ("ripcord", "real-down"))
real_floor_up = ratio(("sqitch", "real-deploy"), ("psql", "real-floor-deploy"))
real_floor_down = ratio(("sqitch", "real-revert"), ("psql", "real-floor-revert"))
real_lost = {"ripcord": num("ripcord_real_rows_lost"), "sqitch": num("sqitch_real_rows_lost")}
real_db_snaps, real_table_snaps = num("real_db_snapshots"), num("real_table_snapshots")
if real_changes:
    w(f"### A realistic plan of {real_changes} changes on {fmt_mb(num('real_data_bytes'))} of data")
    w("")
    w("A generated sqitch project (`scripts/bench.d/gen-sqitch-real.py`) of the kind real projects have: roles created")
    w("under guards (`SELECT format('CREATE ROLE %I …') WHERE NOT EXISTS (…) \\gexec` and `DO` blocks), role")
    w("membership, `GRANT`/`REVOKE`, `ALTER DEFAULT PRIVILEGES`, schemas, enum and composite types, domains, new")
    w("tables (some seeded), indexes, comments, columns added to loaded tables, SQL and PL/pgSQL functions and a")
    w("procedure, triggers, row-level security with policies, views; psql variables from sqitch.conf")
    w("`[deploy.variables]` (`:\"schema\"`, `:'reader'`), from `--set audit_cutoff=…` and from `\\set` in the scripts;")
    w("verify scripts in `BEGIN; … ROLLBACK;`, some in several blocks with `SET LOCAL`. Destructive changes act on")
    w("loaded tables: `DROP COLUMN` (addresses), `DELETE` of rows (audit_log, tags), `UPDATE` of rows (products) and")
    w("`DROP TABLE` (legacy_sessions); their revert scripts do what a script can (put the column or table back, empty).")
    w("")
    w(f"The data (`BENCH_MIGRATE_REAL_MB={num('real_mb')}`) is what the application's database holds before this plan:")
    w("loaded once into a template database, untimed, and each run deploys onto a fresh copy of it")
    w("(`CREATE DATABASE … TEMPLATE`), so neither tool's time includes the bulk load, and both include what the")
    w("changes themselves read and write. The tables, largest first:")
    if num("real_mb") != 1000:
        w("")
        w(f"**{num('real_mb')} MB, not the default 1000**: less data than the target describes.")
    w("")
    try:
        tabs = [l.rstrip("\n").split("\t") for l in open(os.path.join(d, "real-tables.tsv"))]
        w("; ".join(f"`shop.{t}` {int(n):,} rows, {fmt_mb(int(b))}" for t, n, b in tabs) + ".")
        w("")
    except (OSError, ValueError):
        pass
    w("| step | tool | command | seconds | peak RSS MiB | afterwards |")
    w("| --- | --- | --- | ---: | ---: | --- |")
    for title, tool, step, cmd, note in (
        ("Apply all", "sqitch", "real-deploy", "`sqitch deploy --set audit_cutoff=…`", None),
        ("", "ripcord", "real-up", "`ripcord migrate up --set audit_cutoff=…`", "up"),
        ("Revert all", "sqitch", "real-revert", "`sqitch revert -y`", "sqitch"),
        ("", "ripcord", "real-down", "`ripcord migrate down --to @root`", "ripcord"),
        ("The scripts alone: deploy", "psql", "real-floor-deploy", "`psql -f floor-deploy.sql`", None),
        ("The scripts alone: revert", "psql", "real-floor-revert", "`psql -f floor-revert.sql`", None),
    ):
        r = get(tool, step)
        c = {None: "", "up": "catalog as sqitch's" if check(tool, step) else "**catalog differs from sqitch's**"}.get(note)
        if note in ("sqitch", "ripcord"):
            n = real_lost[note]
            c = ("catalog as before the plan" if check(tool, step) else "**catalog not as before the plan**") + (
                f"; {n:,} rows lost" if n is not None else "")
        w(f"| {title} | {tool} | {cmd} | {r['s']:.2f} | {r['rss'] / 1024:,.0f} | {c} |" if r
          else f"| {title} | {tool} | {cmd} | failed | | {c} |")
    w("")
    w("\"Catalog\": schemas, tables, columns (by name), constraints, indexes, functions, triggers, policies, views,")
    w("types, privileges in effect, default privileges, comments, roles, and the row counts of the tables outside")
    w("`shop` (those of `shop` are the rows lost). \"Rows lost\": rows of the loaded tables (`md5` of each whole row)")
    w("that the template holds and the database no longer holds as they were after the full revert: sqitch's revert")
    w("scripts cannot bring back what the destructive changes removed; ripcord puts it back from its table snapshots.")
    w("")
    for name, what in (("real-up.json", "applied"), ("real-down.json", "reverted")):
        info = inside(name, what)
        if info:
            w(f"- `ripcord migrate {'up' if what == 'applied' else 'down'} --json`: {info}.")
    if real_db_snaps is not None:
        w(f"- Safety snapshots during the apply: {real_db_snaps} of the whole database, {real_table_snaps} of tables.")
    w("")
    w("\"The scripts alone\": every deploy script in plan order (then every revert script in reverse order) run by")
    w("one `psql` session with the same variables, on a fresh copy of the same database: no tracking, no verify")
    w("scripts, no safety snapshots, no process per change. No tool that runs these scripts can take less, so it")
    w("bounds the ratio any tool can reach against sqitch.")
    w("")
    w(f"sqitch time / ripcord time: apply **{fmt_ratio(r_real_up)}**, revert **{fmt_ratio(r_real_down)}**.")
    if real_floor_up or real_floor_down:
        w(f"The most any tool could reach (sqitch time / the scripts alone): apply {fmt_ratio(real_floor_up)}, "
          f"revert {fmt_ratio(real_floor_down)}.")
    w("")
w("### Rolling back `DROP COLUMN` on a large table")
w("")
big_rows, big_bytes = num("big_rows") or 0, num("big_bytes")
w(f"Database `bench` built as in the PostgreSQL section (`pgbench -i -s {scale}` plus `docs`), plus a table `big`")
w(f"(bigint primary key, an int, `payload` text of 98 characters) of {big_rows:,} rows ({fmt_mb(big_bytes)} with its")
w(f"index): {fmt_mb(num('db_bytes_big'))} in all (`pg_database_size`). The change is a one-change native plan with")
w("no down script, `ALTER TABLE big DROP COLUMN payload`, so ripcord's way back is the safety snapshot it takes of")
w("`big` before running it. The usual way back without ripcord is the dump taken before the change, restored")
w("in full into a new database (from which the column can then be copied back).")
w("")
if scale != 100:
    w(f"**Scale {scale}, not the default 100**: the database and `big` are smaller than the target describes.")
    w("")
lost = {"ripcord": num("ripcord_rows_lost"), "pg_restore": num("pg_restore_rows_lost")}
dropped = check("ripcord", "drop-up") is True
if not dropped:
    lost["ripcord"] = None
w("| step | tool | command | seconds | peak RSS MiB | rows lost |")
w("| --- | --- | --- | ---: | ---: | ---: |")
rows = [
    ("Backup before the change", "pg_dump", "Fd", f"`pg_dump -Fd -j{jobs} -f bench.dir bench`",
     f"folder {fmt_mb(num('dump_fd_bytes'))}"),
    ("Apply (with the safety snapshot)", "ripcord", "drop-up", "`ripcord migrate up`", "—"),
    ("Roll back", "ripcord", "drop-down", "`ripcord migrate down --to @root`", None),
    ("", "pg_restore", "restore", f"`createdb r2 && pg_restore -j{jobs} -d r2 bench.dir`", None),
]
for title, tool, step, cmd, note in rows:
    r = get(tool, step)
    if note is None:
        n = lost.get(tool)
        note = f"{n:,}" if n is not None else (
            "n/a: the column was not dropped" if tool == "ripcord" and not dropped else "not measured")
    if step == "drop-up" and check(tool, step) is False:
        note = "**column still there**"
    secs = f"{r['s']:.2f}" if r else "failed"
    rss = f"{r['rss'] / 1024:,.0f}" if r else ""
    w(f"| {title} | {tool} | {cmd} | {secs} | {rss} | {note} |")
w("")
w(f"Rows lost: rows of `big` (of {big_rows:,}) whose `payload` afterwards is missing or differs from the value")
w("recorded before the change (`md5(payload)` per `id`). ripcord's rollback puts the table back in place in")
w("`bench`; `pg_restore` builds a second, complete copy of the database. The ripcord repository held"
  f" {fmt_mb(num('repo_bytes_drop'))} after the apply.")
w("")
for name, what in (("drop-up.json", "applied"), ("drop-down.json", "reverted")):
    info = inside(name, what)
    if info:
        w(f"- `ripcord migrate {'up' if what == 'applied' else 'down'} --json`: {info}.")
j = load("drop-up.json")
try:
    fp_ms = sum(c.get("fingerprint_ms") or 0 for c in j["changes"])
    ch_ms = sum(c.get("duration_ms") or 0 for c in j["changes"])
    w(f"- The post-change fingerprint of `big` ({big_rows:,} rows; a hash of each row's key and of the whole row,"
      f" taken after the change committed, so no writer waits for it): {fp_ms / 1000:.2f} s"
      f" (`fingerprint_ms`) of the change's {ch_ms / 1000:.2f} s (`duration_ms`, which includes it;"
      " `DROP COLUMN` itself takes milliseconds).")
except (TypeError, KeyError, AttributeError):
    pass
j = load("drop-down.json")
try:
    tabs = [t for c in j["changes"] for t in c.get("tables", [])]
    w("- ripcord's own account of the rollback: " + "; ".join(
        f"`{t['table']}` {t['restored_rows']:,} rows restored, {t['kept_rows']:,} kept, {t['discarded_rows']:,} discarded"
        f" (policy {t['policy']})" for t in tabs) + f"; `rows_lost` {j.get('rows_lost')}.")
except (TypeError, KeyError, AttributeError):
    pass
w("")
r_rb = ratio(("pg_restore", "restore"), ("ripcord", "drop-down"))
w(f"pg_restore time / ripcord rollback time: **{fmt_ratio(r_rb)}**.")
w("")


w("### SQLite rollback with foreign keys")
w("")
w(f"A SQLite database with foreign keys on: {num('fk_parents') or 0:,} `parents` and {num('fk_children') or 0:,}"
  " `children` pointing at them through a column without an index. The change drops a column of `parents`")
w("(no down script); `ripcord migrate down --to @root` puts the table back from its safety snapshot, which")
w("deletes and reloads every parent row inside one transaction, then checks the foreign keys before COMMIT.")
w("")
fk = get("ripcord", "fk-down")
fk_ok = fk is not None and check("ripcord", "fk-down") is True
w("| step | seconds | peak RSS MiB | notes put back |")
w("| --- | ---: | ---: | --- |")
for step, title in (("fk-up", "`ripcord migrate up`"), ("fk-down", "`ripcord migrate down --to @root`")):
    r = get("ripcord", step)
    done = "" if step == "fk-up" else ("all" if check("ripcord", step) else "**not all**")
    w(f"| {title} | {r['s']:.2f} | {r['rss'] / 1024:,.0f} | {done} |" if r else f"| {title} | failed | | |")
w("")


w("### Writer stall during a safety snapshot")
w("")
w("A writer updates, inserts and deletes rows (one statement per transaction) while `ripcord migrate up`")
w("applies a change behind a safety snapshot of `accounts`: on PostgreSQL `ALTER TABLE accounts DROP COLUMN note`;")
w("on SQLite, whose `DROP COLUMN` rewrites the whole table (the change's own work, not the snapshot's), a one-row")
w("`UPDATE` and a `RENAME COLUMN`. The figure is the writer's longest transaction; `migrate up` includes the safety")
w("snapshot and the post-change fingerprint. Release build of the test")
w("`a_writer_is_not_stalled_for_the_length_of_the_safety_snapshot` (its own PostgreSQL cluster; SQLite in WAL mode),")
w("`BENCH_MIGRATE_PARTS=stall BENCH_SECTIONS=migrate scripts/bench`.")
w("")
w("| rows | database | `migrate up` s | writer's longest transaction s |")
w("| ---: | --- | ---: | ---: |")
stall_rows = sorted({int(k[1].split("-")[2]) for k in results if k[1].startswith("stall-")})
worst = None
for rows in stall_rows:
    for kind, title in (("pg", "PostgreSQL"), ("sqlite", "SQLite (WAL)")):
        s_ = get("ripcord", f"stall-{kind}-{rows}")
        u_ = get("ripcord", f"stallup-{kind}-{rows}")
        if s_:
            worst = max(worst or 0, s_["s"])
        w(f"| {rows:,} | {title} | {u_['s']:.2f} | {s_['s']:.3f} |" if s_ and u_ else f"| {rows:,} | {title} | failed | |")
w("")


def target(name, value, ok, figure):
    if value is None:
        return f"| {name} | n/a | not measured |"
    return f"| {name} | {'met' if ok else 'missed'} | {figure} |"


both = lambda tool, step: check(tool, step) is True


def bound(x):
    return "" if x is None else f"; at most {fmt_ratio(x)} for any tool (the scripts alone in one psql session)"


w("### Targets")
w("")
w("| target | result | figure |")
w("| --- | --- | --- |")
ok_up = r_up is not None and both("ripcord", "up") and both("sqitch", "deploy")
ok_down = r_down is not None and ok_up and both("ripcord", "down") and both("sqitch", "revert")
w(target(f"apply {changes} changes >= 10x faster than sqitch", r_up, ok_up and r_up >= 10,
         f"{fmt_ratio(r_up)} (sqitch time / ripcord time)"))
w(target(f"revert {changes} changes >= 10x faster than sqitch", r_down, ok_down and r_down >= 10,
         f"{fmt_ratio(r_down)} (sqitch time / ripcord time)"))
if real_changes:
    ok_real_up = r_real_up is not None and check("ripcord", "real-up") is True
    ok_real_down = r_real_down is not None and ok_real_up and check("ripcord", "real-down") is True
    w(target(f"realistic plan: apply >= 10x faster than sqitch", r_real_up, ok_real_up and r_real_up >= 10,
             f"{fmt_ratio(r_real_up)} (sqitch time / ripcord time){bound(real_floor_up)}"))
    w(target(f"realistic plan: revert >= 10x faster than sqitch", r_real_down, ok_real_down and r_real_down >= 10,
             f"{fmt_ratio(r_real_down)} (sqitch time / ripcord time){bound(real_floor_down)}"))
    w(target("realistic plan: the destructive changes roll back with 0 rows lost", real_lost["ripcord"],
             real_lost["ripcord"] == 0 and check("ripcord", "real-down") is True,
             f"{real_lost['ripcord']:,} rows lost (sqitch's revert: {real_lost['sqitch']:,})"
             if real_lost["ripcord"] is not None and real_lost["sqitch"] is not None else ""))
    w(target("realistic plan: 0 whole-database safety snapshots", real_db_snaps, real_db_snaps == 0,
             f"{real_db_snaps} whole-database, {real_table_snaps} table snapshots"))
w(target(f"DROP COLUMN rollback >= 10x faster than `pg_restore -j{jobs}` of the database", r_rb,
         r_rb is not None and r_rb >= 10 and dropped and lost["ripcord"] == 0,
         f"{fmt_ratio(r_rb)} (pg_restore time / ripcord time)"))
w(target("SQLite rollback of 20k parents with 300k unindexed children < 5 s", fk["s"] if fk else None,
         fk_ok and fk["s"] < 5, f"{fk['s']:.2f} s" if fk else ""))
w(target("a writer's longest stall during a safety snapshot <= 1 s at every size", worst,
         worst is not None and worst <= 1 and len(stall_rows) >= 2,
         f"{worst:.3f} s at most over {', '.join(f'{r:,}' for r in stall_rows)} rows" if worst is not None else ""))
w(target("DROP COLUMN rollback loses no rows", lost["ripcord"], lost["ripcord"] == 0,
         f"{lost['ripcord']:,} of {big_rows:,} rows lost" if lost["ripcord"] is not None else ""))
w("")
w("### Reproduce")
w("")
w("```")
knobs = ([] if scale == 100 else [f"BENCH_PG_SCALE={scale}"]) + (
    [f"BENCH_MIGRATE_REAL_MB={num('real_mb')}"] if real_changes and num("real_mb") != 1000 else [])
w(" ".join(["BENCH_SECTIONS=migrate"] + knobs + ["scripts/bench"]))
w("```")
w("")
w("The script installs sqitch and DBD::Pg (apt) when missing, starts its own cluster under")
w("`bench-work/migrate/cluster`, generates the sqitch project into `bench-work/migrate/sqitch`, measures and")
w("removes the cluster; logs, the plans and raw `results.tsv` stay in `bench-work/migrate/`.")
w("<!-- bench:migrate:end -->")

open(env["REPORT"], "w").write("\n".join(out) + "\n")
PY
}
