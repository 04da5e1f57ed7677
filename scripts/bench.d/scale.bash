# shellcheck shell=bash
# Section `scale` of scripts/bench (sourced by it; not run on its own).
#
# Under $WORK/scale, on the generated data set of the files section (the tree
# and the SQLite file, read in place):
#  1. S3: the first snapshot and the restore into a repository in a local
#     Garage (single node, started here on free ports of 127.0.0.1, stopped
#     when done), by ripcord and by restic's S3 backend on the same server;
#     and the same two steps into a local folder, in the same run, so that
#     the S3 ratios can be set against the folder's;
#  2. copy: every snapshot of the folder repository copied into a new folder
#     repository with another passphrase, by `ripcord copy` and by `restic
#     copy`;
#  3. drill: `ripcord drill` of the folder repository's latest snapshots, RTO
#     per target.
# Every timed step runs cold (the page cache dropped first, when root).

SCALE_DIR=$WORK/scale
SCALE_META=$SCALE_DIR/meta.tsv
GARAGE_KEY=GK0123456789abcdef01234567
GARAGE_SECRET=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
GARAGE_PID=

scale_meta() { printf '%s\t%s\n' "$1" "$2" >>"$SCALE_META"; }

garage_stop() {
    if [[ -n $GARAGE_PID ]]; then
        kill "$GARAGE_PID" 2>/dev/null || true
        wait "$GARAGE_PID" 2>/dev/null || true
        GARAGE_PID=
    fi
}

# Starts Garage with its data under $SCALE_DIR/garage, lays out the node,
# imports the key and creates the bucket `bench`. Sets GARAGE_ENDPOINT.
garage_start() {
    command -v garage >/dev/null || die "no garage binary: cargo install garage --locked (scripts/test does it)"
    local dir=$SCALE_DIR/garage s3 rpc admin node i
    mkdir -p "$dir"
    s3=$(free_port) rpc=$(free_port) admin=$(free_port)
    cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$GARAGE_SECRET"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$GARAGE_SECRET"
TOML
    RUST_LOG=warn garage -c "$dir/garage.toml" server >"$LOGS/garage.log" 2>&1 &
    GARAGE_PID=$!
    trap garage_stop EXIT
    for ((i = 0; i < 100; i++)); do
        garage -c "$dir/garage.toml" status >/dev/null 2>&1 && break
        sleep 0.3
    done
    node=$(garage -c "$dir/garage.toml" node id -q 2>/dev/null) || die "garage did not start (log: $LOGS/garage.log)"
    garage -c "$dir/garage.toml" layout assign -z dc1 -c 100G "${node%%@*}" >/dev/null
    garage -c "$dir/garage.toml" layout apply --version 1 >/dev/null
    garage -c "$dir/garage.toml" key import --yes -n bench "$GARAGE_KEY" "$GARAGE_SECRET" >/dev/null
    for ((i = 0; i < 50; i++)); do
        garage -c "$dir/garage.toml" bucket create bench >/dev/null 2>&1 && break
        sleep 0.3
    done
    garage -c "$dir/garage.toml" bucket allow --read --write --owner bench --key "$GARAGE_KEY" >/dev/null
    GARAGE_ENDPOINT=http://127.0.0.1:$s3
    # restic reads its S3 credentials from the environment.
    export AWS_ACCESS_KEY_ID=$GARAGE_KEY AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET AWS_DEFAULT_REGION=garage
    scale_meta garage_version "$(garage --version 2>&1 | head -n 1)"
}

# The ripcord configuration of one repository (a folder or an s3:// URL).
scale_ripcord_config() { # DIR URL
    mkdir -p "$1"
    cat >"$1/ripcord.toml" <<TOML
[repository]
url = "$2"

[repository.s3]
endpoint = "$GARAGE_ENDPOINT"
region = "garage"
access_key_id = "$GARAGE_KEY"
secret_access_key = "$GARAGE_SECRET"
path_style = true

[targets.tree]
kind = "dir"
path = "$DATA/tree"

[targets.db]
kind = "sqlite"
path = "$DATA/app.db"
TOML
}

# Part 1: first snapshot and restore, to S3 and to a folder, both tools.
scale_backend_part() {
    local where url rrepo
    for where in s3 local; do
        if [[ $where == s3 ]]; then
            url=s3://bench/ripcord
            rrepo=s3:$GARAGE_ENDPOINT/bench/restic
        else
            url=$SCALE_DIR/ripcord-local/repo
            rrepo=$SCALE_DIR/restic-local/repo
        fi
        scale_ripcord_config "$SCALE_DIR/ripcord-$where" "$url"
        (cd "$SCALE_DIR/ripcord-$where" && ripcord init) >"$LOGS/ripcord-init-$where.log" 2>&1 ||
            die "ripcord init ($where) failed (log: $LOGS/ripcord-init-$where.log)"
        timed "ripcord-$where" snapshot ripcord snapshot
        timed "ripcord-$where" restore ripcord restore latest --into "$SCALE_DIR/ripcord-$where/restore"
        scale_check "ripcord-$where" "$SCALE_DIR/ripcord-$where/restore/tree"
        rm -rf "$SCALE_DIR/ripcord-$where/restore"

        mkdir -p "$SCALE_DIR/restic-$where"
        restic -r "$rrepo" -o s3.region=garage init >"$LOGS/restic-init-$where.log" 2>&1 ||
            die "restic init ($where) failed (log: $LOGS/restic-init-$where.log)"
        timed "restic-$where" snapshot restic --cache-dir cache -o s3.region=garage -r "$rrepo" \
            backup "$DATA/tree" "$DATA/app.db"
        timed "restic-$where" restore restic --cache-dir cache -o s3.region=garage -r "$rrepo" \
            restore latest --target "$SCALE_DIR/restic-$where/restore"
        scale_check "restic-$where" "$SCALE_DIR/restic-$where/restore$DATA/tree"
        rm -rf "$SCALE_DIR/restic-$where/restore"
    done
}

# Records TOOL restore-check: the restored tree equals the data set's.
scale_check() { # TOOL DIR
    local status=ok
    diff -rq "$DATA/tree" "$2" >"$LOGS/$1-restore-check.log" 2>&1 || status=failed
    [[ $status == ok ]] || log "$1: the restored tree differs (log: $LOGS/$1-restore-check.log)"
    printf '%s\trestore-check\t0\t0\t%s\n' "$1" "$status" >>"$RESULTS"
}

# Part 2: the folder repositories copied into new ones with other passphrases.
scale_copy_part() {
    local dst=$SCALE_DIR/ripcord-copy/repo
    mkdir -p "$SCALE_DIR/ripcord-copy"
    (cd "$SCALE_DIR/ripcord-copy" && scale_ripcord_config . "$dst" &&
        RIPCORD_PASSWORD=other-$PASSWORD ripcord init) >"$LOGS/ripcord-copy-init.log" 2>&1 ||
        die "ripcord init of the copy destination failed (log: $LOGS/ripcord-copy-init.log)"
    RIPCORD_TO_PASSWORD=other-$PASSWORD timed ripcord-local copy ripcord copy --to "$dst"
    RESTIC_PASSWORD=other-$PASSWORD restic -r "$SCALE_DIR/restic-copy/repo" init \
        >"$LOGS/restic-copy-init.log" 2>&1 || die "restic init of the copy destination failed"
    RESTIC_FROM_PASSWORD=$PASSWORD RESTIC_PASSWORD=other-$PASSWORD timed restic-local copy \
        restic --cache-dir cache -r "$SCALE_DIR/restic-copy/repo" copy --from-repo "$SCALE_DIR/restic-local/repo"
    scale_meta ripcord_copy_bytes "$(dir_bytes "$dst")"
    scale_meta restic_copy_bytes "$(dir_bytes "$SCALE_DIR/restic-copy/repo")"
}

# Part 3: a drill of the folder repository's latest snapshots.
scale_drill_part() {
    timed ripcord-local drill "${STDOUT_TO[@]}" "$SCALE_DIR/drill.json" ripcord --json drill
}

# Renders its part of the report into $SCALE_DIR/report.md.
scale_section() {
    rm -rf "${SCALE_DIR:?}"
    # shellcheck disable=SC2034 # read by `timed`
    RUN_DIR=$SCALE_DIR RESULTS=$SCALE_DIR/results.tsv LOGS=$SCALE_DIR/logs
    mkdir -p "$LOGS"
    : >"$RESULTS"
    : >"$SCALE_META"
    generate_data
    scale_meta ripcord_version "$(tool_version ripcord)"
    scale_meta restic_version "$(tool_version restic)"
    scale_meta data_bytes "$(find "$DATA/tree" "$DATA/app.db" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')"
    scale_meta scale "$SCALE"
    garage_start
    scale_backend_part
    scale_copy_part
    scale_drill_part
    garage_stop
    local report=$SCALE_DIR/report.md
    CACHE_STATE=$CACHE_STATE SCALE_DIR=$SCALE_DIR SCALE_META=$SCALE_META RESULTS=$RESULTS REPORT=$report \
        render_scale_report
}

render_scale_report() {
    python3 - <<'PY'
import datetime
import json
import os

env = os.environ
d = env["SCALE_DIR"]
runs = {}
for line in open(env["RESULTS"]):
    tool, step, secs, rss, status = line.rstrip("\n").split("\t")
    runs[(tool, step)] = (float(secs), int(rss), status == "ok")
meta = dict(line.rstrip("\n").split("\t", 1) for line in open(env["SCALE_META"]))
mb = int(meta["data_bytes"]) / 1e6


def cell(tool, step):
    r = runs.get((tool, step))
    if not r:
        return None
    return r


def row(label, tool, step, what):
    r = cell(tool, step)
    if not r:
        return f"| {label} | {what} | not run | | | |"
    secs, rss, ok = r
    check = runs.get((tool, "restore-check"))
    checked = "" if step != "restore" or not check else ("identical" if check[2] else "DIFFERS")
    return f"| {label} | {what} | {secs:.2f} | {mb / secs:,.1f} | {rss // 1024} | {'ok' if ok else 'FAILED'} {checked} |"


def ratio(step, where):
    r, p = cell(f"ripcord-{where}", step), cell(f"restic-{where}", step)
    if not r or not p or not r[2] or not p[2]:
        return None
    return p[0] / r[0]


out = ["<!-- bench:scale:start -->", "## Scale-out: S3, copy and drills", ""]
out += [
    "The data set of the files section (tree and SQLite file, "
    f"{mb:,.0f} MB at scale {meta['scale']}), read in place. Each step runs once, with the page cache "
    f"{'dropped before it' if env['CACHE_STATE'] == 'cold' else 'warm (not root: it could not be dropped)'}.",
    "",
    f"- ripcord: {meta['ripcord_version']}; restic: {meta['restic_version']}; S3 server: {meta['garage_version']}, "
    "single node on 127.0.0.1, metadata in SQLite, on the same disk",
    "- MB/s is the data set's size over wall-clock seconds; peak RSS is the client's",
    "",
    "### S3 (Garage) against a local folder",
    "",
    "| backend | tool and step | seconds | MB/s | peak RSS MiB | result |",
    "|---|---|---:|---:|---:|---|",
]
for where, label in (("s3", "S3"), ("local", "folder")):
    for tool in ("ripcord", "restic"):
        for step in ("snapshot", "restore"):
            out.append(row(label, f"{tool}-{where}", step, f"{tool} {'first snapshot' if step == 'snapshot' else 'restore'}"))
out += ["", "| ratio (restic time / ripcord time) | S3 | folder | S3 against folder |", "|---|---:|---:|---:|"]
targets = []
for step, name in (("snapshot", "first snapshot"), ("restore", "restore")):
    s3, local = ratio(step, "s3"), ratio(step, "local")
    rel = s3 / local if s3 and local else None
    f = lambda x: f"{x:.2f}x" if x else "n/a"
    out.append(f"| {name} | {f(s3)} | {f(local)} | {f(rel)} |")
    targets.append((f"{name} to S3: restic ratio within 20% of the folder's", rel is not None and rel >= 0.8,
                    f"S3 {f(s3)} against folder {f(local)} ({f(rel)} of it)"))
out += ["", "### copy", "",
        "Every snapshot of the folder repository into a new folder repository with another passphrase.", "",
        "| tool | seconds | MB/s | peak RSS MiB | destination bytes |", "|---|---:|---:|---:|---:|"]
for tool, key in (("ripcord", "ripcord_copy_bytes"), ("restic", "restic_copy_bytes")):
    r = cell(f"{tool}-local", "copy")
    if r:
        out.append(f"| {tool} copy | {r[0]:.2f} | {mb / r[0]:,.1f} | {r[1] // 1024} | {int(meta.get(key, 0)):,} |")
rc, pc = cell("ripcord-local", "copy"), cell("restic-local", "copy")
if rc and pc:
    out.append(f"\nrestic copy time / ripcord copy time: **{pc[0] / rc[0]:.2f}x**.")
out += ["", "### Restore drill", ""]
try:
    drill = json.load(open(os.path.join(d, "drill.json")))
    objective = drill.get("rto_objective_seconds")
    out += ["| target | kind | RTO seconds | objective | result | checked |", "|---|---|---:|---|---|---|"]
    for t in drill.get("targets", []):
        out.append(f"| {t.get('target')} | {t.get('kind')} | {t.get('rto_seconds', 0):.2f} | "
                   f"{f'{objective:.0f} s' if objective else 'none set'} | {t.get('result')} | {t.get('checked')} |")
    out.append(f"\nThe drill {drill.get('result')}: every target restored into scratch and checked.")
except (OSError, ValueError) as e:
    out.append(f"The drill did not run: {e}")
out += ["", "### Targets", "", "| target | result | figure |", "|---|---|---|"]
for name, met, fig in targets:
    out.append(f"| {name} | {'met' if met else 'missed'} | {fig} |")
out += ["", "Reproduce: `BENCH_SECTIONS=scale scripts/bench` (`BENCH_SCALE` sets the data set's size; garage from "
        "`cargo install garage --locked`, restic from Debian's package).", "", "<!-- bench:scale:end -->", ""]
open(env["REPORT"], "w").write("\n".join(out))
PY
}
