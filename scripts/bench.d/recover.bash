# shellcheck shell=bash
# Section `recover` of scripts/bench (sourced by it; not run on its own).
#
# What a recovery run (`ripcord recover`) adds to the work of its steps, under
# $WORK/recover, with no server:
#  1. journal overhead: a level of $REC_STEPS steps `{ kind = "command", run =
#     "true" }` against the same commands run by one `sh` loop. Both warm (the
#     page cache is not dropped: the figure is ripcord's own cost, not reading
#     its binary from disk), after one untimed run of each, on one catalog that
#     grows run after run as a real one does;
#  2. restore inside a run: a generated SQLite database of $REC_MB MB,
#     snapshotted once. Before every timed run ~1% of its rows are updated and
#     ~0.1% deleted; `ripcord restore latest --target db` and `ripcord recover
#     --level restore` (one restore step of the same snapshot) take turns, cold
#     like the other sections' steps. Each restore is checked (untimed) to have
#     brought the rows back.
# Each timed step runs $REC_RUNS times; the report gives the median. Disk: the
# database, and a repository that grows by about a compressed copy of it with
# every restore's safety snapshot (~3 GB at the defaults).

REC_RUNS=${BENCH_RECOVER_RUNS:-5}
REC_MB=${BENCH_RECOVER_MB:-500}
REC_STEPS=20
REC_DIR=$WORK/recover
REC_META=$REC_DIR/meta.tsv # key value
REC_DB=$REC_DIR/data/app.db
REC_CFG=$REC_DIR/ripcord/ripcord.toml

rec_meta() { printf '%s\t%s\n' "$1" "$2" >>"$REC_META"; }

# The repository, the database target, and the two levels the section runs.
rec_config() {
    {
        cat <<TOML
[repository]
url = "$REC_DIR/ripcord/repo"

[targets.db]
kind = "sqlite"
path = "$REC_DB"

[runbooks.bench]
steps = [
TOML
        local i
        for ((i = 0; i < REC_STEPS; i++)); do echo '  { kind = "command", run = "true" },'; done
        cat <<'TOML'
]

[runbooks.restore]
steps = [
  { kind = "restore", target = "db", snapshot = "latest" },
]
TOML
    } >"$REC_CFG"
}

# A SQLite database of about $REC_MB MB (file size): a table `docs` of rows of
# pseudo-words (a title of 6, a body of 100-200) with an index on the title.
# Text like this compresses about 3x, as application data does; it does not
# shrink to nothing. Prints "rows<TAB>bytes".
rec_generate() {
    python3 - "$REC_DB" "$REC_MB" <<'PY'
import os
import random
import sqlite3
import sys

path, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261202)
syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
words = sorted({"".join(rng.choices(syllables, k=rng.randint(1, 4))) + rng.choice(["", "n", "r", "s"])
                for _ in range(30000)})
if os.path.exists(path):
    os.remove(path)
db = sqlite3.connect(path)
db.executescript("""
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, n INTEGER NOT NULL);
CREATE INDEX docs_title ON docs (title);
""")
page_size = db.execute("PRAGMA page_size").fetchone()[0]
choose, rows = rng.choices, 0
while db.execute("PRAGMA page_count").fetchone()[0] * page_size < mb * 1e6:
    batch = []
    for _ in range(2000):
        rows += 1
        batch.append((rows, " ".join(choose(words, k=6)), " ".join(choose(words, k=rng.randint(100, 200))),
                      rng.randrange(1000)))
    db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", batch)
db.commit()
db.close()
print(f"{rows}\t{os.path.getsize(path)}")
PY
}

# What a restore must bring back: the row count and two sums over every row.
rec_fingerprint() {
    python3 - "$REC_DB" <<'PY'
import sqlite3
import sys

db = sqlite3.connect(sys.argv[1])
print(*db.execute("SELECT count(*), total(n), total(length(body)) FROM docs").fetchone(), sep="\t")
PY
}

# Changes the database a little, so that the next restore has work to do:
# ~1% of the rows updated, ~0.1% deleted. Prints "updated<TAB>deleted".
rec_modify() {
    python3 - "$REC_DB" <<'PY'
import sqlite3
import sys

db = sqlite3.connect(sys.argv[1])
updated = db.execute("UPDATE docs SET n = n + 1, title = upper(title) WHERE abs(random()) % 100 = 0").rowcount
deleted = db.execute("DELETE FROM docs WHERE abs(random()) % 1000 = 0").rowcount
db.commit()
print(f"{updated}\t{deleted}")
PY
}

# Records "ripcord STEP-check": the database holds what it held when it was
# snapshotted.
rec_check() { # STEP
    local status=ok got=$LOGS/$1-check.log
    if ! rec_fingerprint >"$got" 2>&1 || ! diff -u "$REC_DIR/fingerprint" "$got" >"$got.diff"; then
        status=failed
        log "ripcord: after $1, the database is not as snapshotted (log: $got.diff)"
    fi
    printf 'ripcord\t%s-check\t0\t0\t%s\n' "$1" "$status" >>"$RESULTS"
}

# Part 1: $REC_STEPS trivial command steps in a run, against the commands alone.
rec_journal_part() {
    # shellcheck disable=SC2016
    local commands=(sh -c 'i=0; while [ "$i" -lt "$1" ]; do sh -c true; i=$((i + 1)); done' commands "$REC_STEPS")
    local recover=(ripcord --json recover --level bench --reason bench)
    log "journal overhead: one untimed run of each first"
    "${commands[@]}" || die "the commands alone failed"
    (cd "$REC_DIR/ripcord" && "${recover[@]}") >"$LOGS/recover-warmup.log" 2>&1 ||
        die "ripcord recover failed (log: $LOGS/recover-warmup.log)"
    DROP_CACHES=0
    local run
    for ((run = 1; run <= REC_RUNS; run++)); do
        log "journal overhead: run $run of $REC_RUNS"
        # Taking turns, so that a slow moment of the machine hits both.
        if ((run % 2)); then timed sh commands "${commands[@]}"; fi
        timed ripcord recover-commands "${STDOUT_TO[@]}" "$REC_DIR/json/recover-commands-$run.json" "${recover[@]}"
        if ((run % 2 == 0)); then timed sh commands "${commands[@]}"; fi
    done
    # shellcheck disable=SC2034 # read by `timed`
    DROP_CACHES=1
}

# Part 2: in-place restore of the database, alone and as the one step of a run.
rec_restore_part() {
    local run step order mod
    for ((run = 1; run <= REC_RUNS; run++)); do
        log "restore inside a run: run $run of $REC_RUNS"
        # Taking turns, so that a slow moment of the machine hits both.
        order=(restore recover-restore)
        if ((run % 2 == 0)); then order=(recover-restore restore); fi
        for step in "${order[@]}"; do
            mod=$(rec_modify) || die "changing the database before a restore failed"
            rec_meta "modified_$step" "$mod"
            if [[ $step == restore ]]; then
                timed ripcord restore "${STDOUT_TO[@]}" "$REC_DIR/json/restore-$run.json" \
                    ripcord --json restore latest --target db
            else
                timed ripcord recover-restore "${STDOUT_TO[@]}" "$REC_DIR/json/recover-restore-$run.json" \
                    ripcord --json recover --level restore --reason bench
            fi
            rec_check "$step"
        done
    done
}

# Renders its part of the report into $REC_DIR/report.md.
recover_section() {
    [[ $REC_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RECOVER_RUNS must be a whole number above 0, not $REC_RUNS"
    [[ $REC_MB =~ ^[1-9][0-9]*$ ]] || die "BENCH_RECOVER_MB must be a whole number above 0, not $REC_MB"
    rm -rf "${REC_DIR:?}"
    # shellcheck disable=SC2034 # RUN_DIR is read by `timed`
    RUN_DIR=$REC_DIR RESULTS=$REC_DIR/results.tsv LOGS=$REC_DIR/logs
    mkdir -p "$LOGS" "$REC_DIR/ripcord" "$REC_DIR/data" "$REC_DIR/json"
    : >"$RESULTS"
    : >"$REC_META"
    rec_meta ripcord_version "$(tool_version ripcord)"
    rec_meta runs "$REC_RUNS"
    rec_meta mb "$REC_MB"
    rec_meta steps "$REC_STEPS"

    rec_config
    log "generating a SQLite database of $REC_MB MB into $REC_DB"
    local gen
    gen=$(rec_generate) || die "generating the database failed"
    rec_meta db_rows "${gen%%$'\t'*}"
    rec_meta db_bytes "${gen##*$'\t'}"
    rec_fingerprint >"$REC_DIR/fingerprint"
    (cd "$REC_DIR/ripcord" && ripcord init) >"$LOGS/ripcord-init.log" 2>&1 ||
        die "ripcord init failed (log: $LOGS/ripcord-init.log)"
    timed ripcord snapshot "${STDOUT_TO[@]}" "$REC_DIR/json/snapshot.json" ripcord --json snapshot
    [[ -n $(json_get "$REC_DIR/json/snapshot.json" snapshot) ]] ||
        die "ripcord snapshot failed (log: $LOGS/ripcord-snapshot.log)"
    rec_meta repo_bytes_first "$(dir_bytes "$REC_DIR/ripcord/repo")"

    rec_journal_part
    rec_restore_part

    rec_meta repo_bytes_last "$(dir_bytes "$REC_DIR/ripcord/repo")"
    rec_meta catalog_bytes "$(dir_bytes "$REC_DIR/ripcord/.ripcord/catalog.db")"

    local report=$REC_DIR/report.md
    CACHE_STATE=$CACHE_STATE REC_DIR=$REC_DIR REC_META=$REC_META RESULTS=$RESULTS REPORT=$report \
        render_recover_report
}

render_recover_report() {
    python3 - <<'PY'
import datetime
import json
import os
import statistics

env = os.environ
d = env["REC_DIR"]

# Every run of a step, in order: (seconds, peak RSS KiB, ok).
runs = {}
for line in open(env["RESULTS"]):
    tool, step, secs, rss, status = line.rstrip("\n").split("\t")
    runs.setdefault((tool, step), []).append((float(secs), int(rss), status == "ok"))
meta = {}
for line in open(env["REC_META"]):
    k, _, v = line.rstrip("\n").partition("\t")
    meta.setdefault(k, v)  # the first of the modifications


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


def load(name):
    try:
        return json.load(open(os.path.join(d, "json", name)))
    except (OSError, ValueError):
        return None


def fmt_mb(b):
    if b is None:
        return "n/a"
    if b < 1e6:
        return f"{b / 1e3:,.0f} kB"
    return f"{b / 1e6:,.2f} MB" if b < 10e6 else f"{b / 1e6:,.1f} MB"


def get(tool, step):
    """Median seconds, largest peak RSS and every run's seconds; None when a run failed or none ran."""
    rs = runs.get((tool, step))
    if not rs or not all(r[2] for r in rs):
        return None
    return {"s": statistics.median(r[0] for r in rs), "rss": max(r[1] for r in rs), "all": [r[0] for r in rs]}


def check(step):
    rs = runs.get(("ripcord", step + "-check"))
    return None if not rs else all(r[2] for r in rs)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def each(fmt, xs):
    return ", ".join(fmt.format(x) for x in xs)


n_runs, n_steps, mb = num("runs") or 0, num("steps") or 0, num("mb")
db_bytes, db_rows = num("db_bytes"), num("db_rows")
mem_kib = int(first_line("/proc/meminfo", "MemTotal").split()[0])
out = []
w = out.append
w("<!-- bench:recover:start -->")
w("## Recovery runs")
w("")
w("What `ripcord recover` adds to the work of a runbook's steps: the journal (each step recorded in the catalog")
w("before it runs and after it ends, each write synced to disk), the lock, the audit entry and the run's own")
w("start; and what a restore step costs inside a run against the same restore run alone. Generated by")
w("`scripts/bench` (`BENCH_SECTIONS=recover` runs only this part); do not edit by hand.")
w("")
if mb != 500:
    w(f"**{mb} MB, not the default 500**: a smaller database than the target describes, so fixed costs weigh")
    w("more in the restore figures.")
    w("")
w(f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
w(f"- Machine: {first_line('/proc/cpuinfo', 'model name')}, {os.cpu_count()} logical cores, "
  f"{mem_kib / 1024 / 1024:.1f} GiB RAM")
w(f"- Client: {meta.get('ripcord_version', 'ripcord')}; one repository and one catalog (`.ripcord/catalog.db`)")
w(f"  for the whole section, which grows run after run as a real one does ({fmt_mb(num('catalog_bytes'))} at the end)")
w(f"- Every timed step ran {n_runs} times, the two compared steps taking turns; the tables give the median time")
w("  and the largest peak RSS (`/usr/bin/time -f %M`)")
w("")
w("### Journal overhead")
w("")
w(f"A level of {n_steps} steps `{{ kind = \"command\", run = \"true\" }}`, against the same {n_steps} commands"
  " run by one `sh`")
w("loop, each `sh -c true` as ripcord runs it. Both warm: the page cache is not dropped and each ran once")
w("untimed before the timed runs, so the figures are the work each does, not reading its binary from disk.")
w("")
cmds, rec = get("sh", "commands"), get("ripcord", "recover-commands")
w("| what | command | seconds | peak RSS MiB | every run, s |")
w("| --- | --- | ---: | ---: | --- |")
for title, r, cmd in (
    (f"{n_steps} commands alone", cmds, f"`sh -c 'while …; do sh -c true; done'`, {n_steps} turns"),
    (f"a run of {n_steps} command steps", rec, "`ripcord recover --level bench --reason bench`"),
):
    w(f"| {title} | {cmd} | {r['s']:.3f} | {r['rss'] / 1024:,.1f} | {each('{:.3f}', r['all'])} |" if r
      else f"| {title} | {cmd} | failed | | |")
w("")
# Per run: (recover - commands) / steps, paired by run; the median of these.
per_step = None
if cmds and rec and n_steps:
    pairs = [(r - c) / n_steps for r, c in zip(rec["all"], cmds["all"])]
    per_step = statistics.median(pairs)
    w(f"Overhead per step, (recover − commands) / {n_steps}, median over the runs: **{per_step * 1000:.2f} ms**")
    w(f"(each run: {each('{:.2f}', [p * 1000 for p in pairs])} ms). It counts everything the run does besides the"
      " commands, fixed")
    w("costs included (starting `ripcord`, reading `ripcord.toml`, opening the catalog, the lock, the audit entry),")
    w(f"spread over the {n_steps} steps.")
docs = [load(f"recover-commands-{i}.json") for i in range(1, n_runs + 1)]
try:
    run_s = median([j["seconds"] for j in docs if j])
    steps_s = median([sum(s["seconds"] for s in j["steps"]) for j in docs if j])
    if run_s is not None and steps_s is not None:
        w(f"ripcord's own account (`--json`, median): the run took {run_s * 1000:.1f} ms inside the process, of which")
        w(f"{steps_s * 1000:.1f} ms in its steps (each step's `seconds`, which include starting `sh`); the"
          f" {(run_s - steps_s) * 1000:.1f} ms between")
        w(f"the steps (the journal's synced writes, opening the catalog, the lock, the audit entry) come to"
          f" {(run_s - steps_s) * 1000 / n_steps:.2f} ms per step.")
except (TypeError, KeyError):
    pass
w("")
w("### Restore inside a run")
w("")
w(f"A generated SQLite database of {fmt_mb(db_bytes)} (`PRAGMA page_count` × `page_size`): a table `docs` of"
  f" {db_rows or 0:,} rows")
w("of pseudo-words (a title of 6, a body of 100-200) with an index on the title; it compresses about 3x.")
w(f"It is snapshotted once (`ripcord snapshot`; repository {fmt_mb(num('repo_bytes_first'))}). Before every timed"
  " restore,")
mod = meta.get("modified_restore", "").split("\t")
first_mod = (f" (the first time: {int(mod[0]):,} updated, {int(mod[1]):,} deleted)" if len(mod) == 2 else "")
w(f"~1% of the rows are updated and ~0.1% deleted{first_mod}, so each restore")
w("has real work: its safety snapshot of the changed database, and putting the snapshot's data back. Then,")
w("taking turns:")
w("")
w("- `ripcord restore latest --target db`: the restore alone, in place;")
w("- `ripcord recover --level restore --reason bench`, whose level is the one step")
w("  `{ kind = \"restore\", target = \"db\", snapshot = \"latest\" }`: the same restore inside a run. The")
w("  restore stages the whole file, every blob read, decrypted and re-hashed, before it replaces the live one:")
w("  that is the step's check of the snapshot (a damaged one would be passed over for the newest earlier one")
w("  that verifies), and the step journals itself.")
w("")
w("Each step starts " + (
    "cold: `sync` and the page cache dropped." if env["CACHE_STATE"] == "cold" else
    "**warm**: /proc/sys/vm/drop_caches was not writable, so the page cache was not dropped."))
w("")
label = {True: "yes", False: "**NO**", None: "not checked"}
snap, rst, rrs = get("ripcord", "snapshot"), get("ripcord", "restore"), get("ripcord", "recover-restore")
w("| step | command | seconds | MB/s | peak RSS MiB | every run, s | rows as snapshotted |")
w("| --- | --- | ---: | ---: | ---: | --- | --- |")
for title, r, cmd, c in (
    ("Snapshot (once)", snap, "`ripcord snapshot`", ""),
    ("Restore alone", rst, "`ripcord restore latest --target db`", label[check("restore")]),
    ("Restore step in a run", rrs, "`ripcord recover --level restore --reason bench`", label[check("recover-restore")]),
):
    if r:
        speed = f"{db_bytes / 1e6 / r['s']:,.1f}" if db_bytes and r["s"] > 0 else ""
        w(f"| {title} | {cmd} | {r['s']:.2f} | {speed} | {r['rss'] / 1024:,.0f} | {each('{:.2f}', r['all'])} | {c} |")
    else:
        w(f"| {title} | {cmd} | failed | | | | {c} |")
w("")
w("MB/s is the database's size divided by wall-clock seconds. \"Rows as snapshotted\": afterwards the table holds")
w("the snapshot's row count and the same sums over every row (untimed check).")
w("")
ratio = None
if rst and rrs:
    pairs = [b / a for a, b in zip(rst["all"], rrs["all"]) if a > 0]
    ratio = median(pairs)
    w(f"Restore step in a run / restore alone, median over the runs: **{ratio:.2f}x** (each run:"
      f" {each('{:.2f}x', pairs)}).")
try:
    alone = median([load(f"restore-{i}.json")["seconds"] for i in range(1, n_runs + 1)])
    step = median([load(f"recover-restore-{i}.json")["steps"][0]["seconds"] for i in range(1, n_runs + 1)])
    inrun = median([load(f"recover-restore-{i}.json")["seconds"] for i in range(1, n_runs + 1)])
    w(f"ripcord's own account (`--json` `seconds`, median): the restore alone {alone:.2f} s; in the run, the step"
      f" {step:.2f} s")
    w(f"and the whole run {inrun:.2f} s.")
except (TypeError, KeyError, IndexError):
    pass
first_b, last_b = num("repo_bytes_first"), num("repo_bytes_last")
if first_b is not None and last_b is not None and n_runs:
    w(f"The repository held {fmt_mb(last_b)} at the end: the safety snapshots of the {2 * n_runs} restores added"
      f" {fmt_mb((last_b - first_b) / (2 * n_runs))}")
    w("each on average (the changed rows are spread over the whole file).")
w("")


def target(name, value, ok, figure):
    if value is None:
        return f"| {name} | n/a | not measured |"
    return f"| {name} | {'met' if ok else 'missed'} | {figure} |"


both_restored = check("restore") is True and check("recover-restore") is True
w("### Targets")
w("")
w("| target | result | figure |")
w("| --- | --- | --- |")
w(target("journal overhead at most 10 ms per step", per_step, per_step is not None and per_step <= 0.010,
         f"{per_step * 1000:.2f} ms per step ((recover − commands) / {n_steps}, median)" if per_step is not None else ""))
w(target("restore inside a run within 1.1x of the restore alone", ratio,
         ratio is not None and ratio <= 1.1 and both_restored,
         f"{ratio:.2f}x (run time / restore time, median)" + ("" if both_restored else "; **a restore check failed**")
         if ratio is not None else ""))
w("")
w("### Reproduce")
w("")
w("```")
knobs = ([] if n_runs == 5 else [f"BENCH_RECOVER_RUNS={n_runs}"]) + ([] if mb == 500 else [f"BENCH_RECOVER_MB={mb}"])
w(" ".join(["BENCH_SECTIONS=recover"] + knobs + ["scripts/bench"]))
w("```")
w("")
w("The script generates the database into `bench-work/recover/data/` (with Python's `sqlite3`), measures, and")
w("leaves the repository, the catalog, logs, each run's `--json` output and raw `results.tsv` in")
w("`bench-work/recover/`.")
w("<!-- bench:recover:end -->")

open(env["REPORT"], "w").write("\n".join(out) + "\n")
PY
}
