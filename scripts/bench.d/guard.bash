# shellcheck shell=bash
# Section `guard` of scripts/bench (sourced by it; not run on its own).
#
# How fast the guard pulls the ripcord, and what watching costs, under
# $WORK/guard, with no server but a small HTTP service of its own (python3
# http.server on 127.0.0.1, answering every request with the status written
# in a file, so the script flips it between 200 and 500):
#  1. detection latency: one probe `api` on the service every 200ms, one rule
#     `availability(api, 1s) < 100%` with `for = 2` and action rollback, and
#     `ripcord guard watch --auto-rollback` running. $GUARD_TRIALS times: note
#     the time (UTC, ms), flip the service to 500, poll `ripcord --json runs`
#     until a new run appears and take its `started`; the delay is started −
#     flip. Then flip back to 200 and wait 1.5 s, so the rule is healthy
#     again (the guard acts once per breach, then again after it has been
#     healthy). The bound is docs/guard.md's `interval × for + wait + 1 s`;
#  2. cost of `guard watch`: 10 HTTP probes at 1s (ten paths of the same
#     service, all healthy), one alert rule per probe, `ripcord guard watch
#     --for $GUARD_SECONDS` under `/usr/bin/time`: CPU time over wall time,
#     peak RSS, and the samples it took.
# Both run warm (the page cache is not dropped) on whatever else the machine
# does; the report gives the load average around the cost run.

GUARD_TRIALS=${BENCH_GUARD_TRIALS:-20}
GUARD_SECONDS=${BENCH_GUARD_SECONDS:-60}
GUARD_DIR=$WORK/guard
GUARD_META=$GUARD_DIR/meta.tsv       # key value
GUARD_TRIALS_TSV=$GUARD_DIR/trials.tsv # trial flip-ms run started status
GUARD_STATUS=$GUARD_DIR/service/status
# The latency part's probe and rule; the bound follows from them.
GUARD_INTERVAL_MS=200
GUARD_FOR=2
GUARD_WAIT_MS=0
GUARD_PROBES=10 # the cost part's probes, one rule each, every second
GUARD_SERVICE_PID=""
GUARD_WATCH_PID=""
GUARD_URL=""

guard_meta() { printf '%s\t%s\n' "$1" "$2" >>"$GUARD_META"; }

# Stops what the section started in the background, by its process id.
guard_cleanup() {
    local pid
    for pid in "$GUARD_WATCH_PID" "$GUARD_SERVICE_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    GUARD_WATCH_PID="" GUARD_SERVICE_PID=""
}

# Every request from now on gets STATUS (written whole: the service never
# reads half a file).
guard_flip() { # STATUS
    printf '%s\n' "$1" >"$GUARD_STATUS.tmp"
    mv -f "$GUARD_STATUS.tmp" "$GUARD_STATUS"
}

# The HTTP service on 127.0.0.1 (a free port), in the background: any path
# answers the status in $GUARD_STATUS with `{"status": N}`. Sets GUARD_URL.
guard_start_service() {
    local port_file=$GUARD_DIR/service/port waited
    mkdir -p "$GUARD_DIR/service"
    guard_flip 200
    python3 - "$GUARD_STATUS" "$port_file" >"$LOGS/service.log" 2>&1 <<'PY' &
import http.server
import os
import sys

status_file, port_file = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            code = int(open(status_file).read().strip())
        except (OSError, ValueError):
            code = 500
        body = b'{"status": %d}' % code
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
PY
    GUARD_SERVICE_PID=$!
    for ((waited = 0; waited < 100; waited++)); do
        [[ -s $port_file ]] && break
        kill -0 "$GUARD_SERVICE_PID" 2>/dev/null || die "the HTTP service did not start (log: $LOGS/service.log)"
        sleep 0.1
    done
    [[ -s $port_file ]] || die "the HTTP service did not start within 10 s (log: $LOGS/service.log)"
    GUARD_URL=http://127.0.0.1:$(cat "$port_file")
    log "HTTP service on $GUARD_URL"
}

# A workspace in DIR: a repository, a dir target, the runbook a rollback
# runs, then GUARD-TOML; `ripcord init`.
guard_workspace() { # DIR GUARD-TOML
    local dir=$1
    mkdir -p "$dir/app"
    echo "a file" >"$dir/app/file.txt"
    cat >"$dir/ripcord.toml" <<TOML
[repository]
url = "$dir/repo"

[targets.app]
kind = "dir"
path = "$dir/app"

[runbooks.emergency]
steps = [{ kind = "command", run = "true" }]

$2
TOML
    (cd "$dir" && ripcord init) >"$LOGS/$(basename "$dir")-init.log" 2>&1 ||
        die "ripcord init failed (log: $LOGS/$(basename "$dir")-init.log)"
}

# How many runs the catalog of DIR holds (0 when `ripcord runs` fails).
guard_run_count() { # DIR
    (cd "$1" && ripcord --json runs 2>/dev/null) | grep -c '^    "run": ' || true
}

# Part 1: from the service going bad to the start of the rollback run.
guard_latency_part() {
    local dir=$GUARD_DIR/latency trial before n flip now started
    guard_workspace "$dir" "[guard.probes.api]
http = \"$GUARD_URL/health\"
interval = \"${GUARD_INTERVAL_MS}ms\"

[[guard.rules]]
name = \"api-down\"
when = \"availability(api, 1s) < 100%\"
for = $GUARD_FOR
action = \"rollback\"
level = \"emergency\""
    # Long enough for every trial to use its whole time limit; stopped when done.
    local limit=$((5 + GUARD_TRIALS * 12))
    log "detection latency: ripcord guard watch --auto-rollback, $GUARD_TRIALS trials"
    (cd "$dir" && exec ripcord --json guard watch --auto-rollback --for "${limit}s") \
        >"$GUARD_DIR/json/latency-watch.json" 2>"$LOGS/latency-watch.log" &
    GUARD_WATCH_PID=$!
    # Healthy samples over the rule's whole window before the first flip.
    sleep 1.5
    kill -0 "$GUARD_WATCH_PID" 2>/dev/null || die "ripcord guard watch ended early (log: $LOGS/latency-watch.log)"
    for ((trial = 1; trial <= GUARD_TRIALS; trial++)); do
        before=$(guard_run_count "$dir")
        flip=$(date -u +%s%3N)
        guard_flip 500
        n=$before
        while :; do
            n=$(guard_run_count "$dir")
            ((n > before)) && break
            now=$(date -u +%s%3N)
            ((now - flip > 10000)) && break
            sleep 0.05
        done
        if ((n > before)); then
            started=$(cd "$dir" && ripcord --json runs | python3 -c '
import json, sys
run = json.load(sys.stdin)[0]
print(run["run"], run["started"], sep="\t")')
            printf '%s\t%s\t%s\tok\n' "$trial" "$flip" "$started" >>"$GUARD_TRIALS_TSV"
            log "detection latency: trial $trial of $GUARD_TRIALS: run ${started%%$'\t'*}"
        else
            printf '%s\t%s\t\t\tnone\n' "$trial" "$flip" >>"$GUARD_TRIALS_TSV"
            log "detection latency: trial $trial of $GUARD_TRIALS: NO run within 10 s (log: $LOGS/latency-watch.log)"
        fi
        guard_flip 200
        # Healthy again over the whole window before the next trial.
        sleep 1.5
    done
    kill -0 "$GUARD_WATCH_PID" 2>/dev/null || log "ripcord guard watch ended before the last trial (log: $LOGS/latency-watch.log)"
    kill "$GUARD_WATCH_PID" 2>/dev/null || true
    wait "$GUARD_WATCH_PID" 2>/dev/null || true
    GUARD_WATCH_PID=""
    (cd "$dir" && ripcord --json runs) >"$GUARD_DIR/json/latency-runs.json" 2>>"$LOGS/latency-watch.log" || true
}

# Part 2: what `guard watch` costs with $GUARD_PROBES probes at 1s.
guard_cost_part() {
    local dir=$GUARD_DIR/cost i toml="" status=ok
    for ((i = 0; i < GUARD_PROBES; i++)); do
        toml+="[guard.probes.p$i]
http = \"$GUARD_URL/p$i\"
interval = \"1s\"

"
    done
    for ((i = 0; i < GUARD_PROBES; i++)); do
        toml+="[[guard.rules]]
name = \"p$i-down\"
when = \"availability(p$i, 30s) < 95%\"
action = \"alert\"

"
    done
    guard_workspace "$dir" "$toml"
    guard_flip 200
    log "cost of guard watch: $GUARD_PROBES probes at 1s for ${GUARD_SECONDS}s"
    guard_meta load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
    if ! (cd "$dir" && /usr/bin/time -f '%e %U %S %M' -o "$GUARD_DIR/cost.time" \
        ripcord --json guard watch --for "${GUARD_SECONDS}s") \
        >"$GUARD_DIR/json/cost-watch.json" 2>"$LOGS/cost-watch.log"; then
        status=failed
        log "ripcord guard watch FAILED (log: $LOGS/cost-watch.log)"
        tail -n 5 "$LOGS/cost-watch.log" >&2 || true
    fi
    guard_meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
    guard_meta cost_status "$status"
    guard_meta cost_time "$(tail -n 1 "$GUARD_DIR/cost.time" 2>/dev/null || true)"
}

# Renders its part of the report into $GUARD_DIR/report.md.
guard_section() {
    [[ $GUARD_TRIALS =~ ^[1-9][0-9]*$ ]] || die "BENCH_GUARD_TRIALS must be a whole number above 0, not $GUARD_TRIALS"
    [[ $GUARD_SECONDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_GUARD_SECONDS must be a whole number above 0, not $GUARD_SECONDS"
    command -v python3 >/dev/null || die "python3 is needed for the HTTP service"
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap guard_cleanup EXIT
    rm -rf "${GUARD_DIR:?}"
    LOGS=$GUARD_DIR/logs
    mkdir -p "$LOGS" "$GUARD_DIR/json"
    : >"$GUARD_META"
    : >"$GUARD_TRIALS_TSV"
    guard_meta ripcord_version "$(tool_version ripcord)"
    guard_meta python_version "$(python3 --version 2>&1)"
    guard_meta trials "$GUARD_TRIALS"
    guard_meta seconds "$GUARD_SECONDS"
    guard_meta interval_ms "$GUARD_INTERVAL_MS"
    guard_meta for "$GUARD_FOR"
    guard_meta wait_ms "$GUARD_WAIT_MS"
    guard_meta probes "$GUARD_PROBES"

    guard_start_service
    guard_latency_part
    guard_cost_part
    guard_cleanup
    trap - EXIT INT TERM

    local report=$GUARD_DIR/report.md
    GUARD_DIR=$GUARD_DIR GUARD_META=$GUARD_META GUARD_TRIALS_TSV=$GUARD_TRIALS_TSV REPORT=$report \
        render_guard_report
}

render_guard_report() {
    python3 - <<'PY'
import datetime
import json
import os
import statistics

env = os.environ
d = env["GUARD_DIR"]

meta = {}
for line in open(env["GUARD_META"]):
    k, _, v = line.rstrip("\n").partition("\t")
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


def load(name):
    try:
        return json.load(open(os.path.join(d, "json", name)))
    except (OSError, ValueError):
        return None


def counted(n, what):
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


n_trials, seconds = num("trials") or 0, num("seconds") or 0
interval_ms, rule_for, wait_ms, n_probes = num("interval_ms"), num("for"), num("wait_ms"), num("probes")
bound = (interval_ms * rule_for + wait_ms + 1000) / 1000

# Every trial: (trial, delay in s or None when no run came).
trials = []
for line in open(env["GUARD_TRIALS_TSV"]):
    trial, flip_ms, run, started, status = line.rstrip("\n").split("\t")
    delay = None
    if status == "ok":
        flip = datetime.datetime.fromtimestamp(int(flip_ms) / 1000, datetime.timezone.utc)
        delay = (parse_time(started) - flip).total_seconds()
    trials.append((int(trial), delay))
delays = sorted(x for _, x in trials if x is not None)
missing = sum(1 for _, x in trials if x is None)
within = sum(1 for x in delays if x <= bound)

runs = load("latency-runs.json") or []
by_guard = [r for r in runs if r.get("trigger") == "guard:api-down"]
succeeded = sum(1 for r in by_guard if r.get("result") == "succeeded")

cost = None
parts = meta.get("cost_time", "").split()
if meta.get("cost_status") == "ok" and len(parts) == 4:
    wall, user, sys_, rss_kib = float(parts[0]), float(parts[1]), float(parts[2]), int(parts[3])
    cost = {"wall": wall, "user": user, "sys": sys_, "cpu": (user + sys_) / wall * 100 if wall > 0 else None,
            "rss": rss_kib / 1024}
watch = load("cost-watch.json")

mem_kib = int(first_line("/proc/meminfo", "MemTotal").split()[0])
out = []
w = out.append
w("<!-- bench:guard:start -->")
w("## The guard")
w("")
w("How long `ripcord guard watch --auto-rollback` takes from a service going bad to the start of the rollback")
w("run, and what watching costs while all is well. Generated by `scripts/bench` (`BENCH_SECTIONS=guard` runs")
w("only this part); do not edit by hand.")
w("")
small = []
if n_trials != 20:
    small.append(f"{n_trials} trials, not the default 20")
if seconds != 60:
    small.append(f"a watch of {seconds} s, not the default 60")
if small:
    w(f"**{'; '.join(small)}**:")
    w("fewer measurements than the targets describe, so the figures are rougher.")
    w("")
w(f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
w(f"- Machine: {first_line('/proc/cpuinfo', 'model name')}, {os.cpu_count()} logical cores, "
  f"{mem_kib / 1024 / 1024:.1f} GiB RAM")
w(f"- Client: {meta.get('ripcord_version', 'ripcord')}")
w(f"- Service: a {meta.get('python_version', 'Python')} `http.server` on 127.0.0.1 started by the script; every")
w("  request gets the status written in a file (200 or 500), which the script flips")
w("- Both parts run warm (the page cache is not dropped), on whatever else the machine runs")
w("")
w("### Detection latency")
w("")
w(f"One probe `api` (`http`, `interval = \"{interval_ms}ms\"`) and one rule: `when = \"availability(api, 1s) < 100%\"`,")
w(f"`for = {rule_for}`, `action = \"rollback\"`, `level = \"emergency\"` (one step `{{ kind = \"command\", run = \"true\" }}`),")
w("watched by `ripcord guard watch --auto-rollback`. Each trial notes the time (UTC, ms), flips the service to")
w("500, polls `ripcord --json runs` every 50 ms until a new run appears, and takes its `started`: the delay")
w("is `started` − the flip, both read from the same clock. Then the service answers 200 again for 1.5 s, so")
w("that the rule is healthy before the next trial (the guard acts once per breach, then again only after")
w("it has been healthy).")
w("")
w(f"Bound: `interval × for + wait + 1 s` = {interval_ms} ms × {rule_for} + {wait_ms / 1000:g} s + 1 s ="
  f" **{bound:.2f} s** (docs/guard.md).")
w("")
w("| trials | runs started | min | median | max | within the bound |")
w("| ---: | ---: | ---: | ---: | ---: | ---: |")
if delays:
    w(f"| {n_trials} | {len(delays)} | {delays[0]:.3f} s | {statistics.median(delays):.3f} s | {delays[-1]:.3f} s |"
      f" {within} of {n_trials} |")
else:
    w(f"| {n_trials} | 0 | | | | 0 of {n_trials} |")
w("")
w("Every trial, in order: " + ", ".join("**no run**" if x is None else f"{x:.3f} s" for _, x in trials) + ".")
if missing:
    w(f"**{missing} of the {n_trials} trials started no run within 10 s.**")
w(f"At the end the catalog holds {counted(len(runs), 'run')}, {len(by_guard)} of them triggered by `guard:api-down`,"
  f" of which {succeeded} succeeded.")
w("")
w("### Cost of `guard watch`")
w("")
w(f"{n_probes} HTTP probes at `interval = \"1s\"` (ten paths of the same service, all answering 200) and one rule per")
w("probe, `availability(pN, 30s) < 95%` with `action = \"alert\"`; every sample goes into the catalog and")
w(f"every rule that reads it is evaluated. `ripcord guard watch --for {seconds}s` ran under")
w("`/usr/bin/time -f '%e %U %S %M'`: CPU is (user + system) / wall, as a share of one core; peak RSS is the")
w("process's maximum resident set.")
w("")
w("| wall s | user s | system s | CPU, % of a core | peak RSS MiB | samples | evaluations |")
w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
if cost:
    samples = watch.get("samples") if watch else None
    evals = watch.get("evaluations") if watch else None
    w(f"| {cost['wall']:.2f} | {cost['user']:.2f} | {cost['sys']:.2f} | {cost['cpu']:.2f} | {cost['rss']:.1f} |"
      f" {samples if samples is not None else 'n/a'} | {evals if evals is not None else 'n/a'} |")
else:
    w("| failed | | | | | | |")
w("")
expected = n_probes * seconds if n_probes else None
if cost and watch and expected:
    w(f"{n_probes} probes for {seconds} s at one sample a second each make about {expected:,} samples; the watch took"
      f" {watch.get('samples', 0):,}.")
    if watch.get("events"):
        w(f"**The rules did something: {len(watch['events'])} event(s)** (see `bench-work/guard/json/cost-watch.json`).")
w("`/usr/bin/time` gives CPU seconds to 0.01 s"
  + (f" ({0.01 / seconds * 100:.3f}% of a core over {seconds} s)." if seconds else "."))
if meta.get("load_before"):
    w(f"Load average (1, 5, 15 min) at the start of the run: {meta['load_before']}; at its end:"
      f" {meta.get('load_after', 'unknown')}.")
w("")


def target(name, value, ok, figure):
    if value is None:
        return f"| {name} | n/a | not measured |"
    return f"| {name} | {'met' if ok else 'missed'} | {figure} |"


w("### Targets")
w("")
w("| target | result | figure |")
w("| --- | --- | --- |")
w(target(f"detection latency at most `interval × for + wait + 1 s` ({bound:.2f} s) in every trial",
         delays[-1] if delays else None, bool(delays) and within == n_trials,
         f"{within} of {n_trials} trials within; max {delays[-1]:.3f} s" if delays else ""))
cpu = cost["cpu"] if cost else None
w(target(f"`guard watch` with {n_probes} probes at 1s uses at most 1% of a core", cpu, cpu is not None and cpu <= 1,
         f"{cpu:.2f}% ((user + system) / wall)" if cpu is not None else ""))
rss = cost["rss"] if cost else None
w(target(f"`guard watch` with {n_probes} probes at 1s stays within 30 MiB", rss, rss is not None and rss <= 30,
         f"{rss:.1f} MiB peak RSS" if rss is not None else ""))
w("")
w("### Reproduce")
w("")
w("```")
knobs = (([] if n_trials == 20 else [f"BENCH_GUARD_TRIALS={n_trials}"])
         + ([] if seconds == 60 else [f"BENCH_GUARD_SECONDS={seconds}"]))
w(" ".join(["BENCH_SECTIONS=guard"] + knobs + ["scripts/bench"]))
w("```")
w("")
w("The script starts the HTTP service (python3) on a free port of 127.0.0.1, measures, stops it, and leaves")
w("the two workspaces, logs, the trials (`trials.tsv`) and the `--json` outputs in `bench-work/guard/`.")
w("<!-- bench:guard:end -->")

open(env["REPORT"], "w").write("\n".join(out) + "\n")
PY
}
