#!/usr/bin/env bash
# Checks that every oracle index is used by the statements it was written
# for: runs each class script a few times against the oracle database with
# auto_explain, once with plan_cache_mode = force_generic_plan and once with
# force_custom_plan, and lists the indexes (or scans) of every statement's
# plan. Writes <workload>/check_oracle.txt; the server log (the plans) is kept
# in /tmp/advisor-check-<workload>-postgres.log.
#
# Usage (as root): bench/advisor/check_oracle.sh --workload tpcc|tickets [--scale full|small]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NAME=check_oracle
# shellcheck source=bench/advisor/lib.sh
source "$HERE/lib.sh"

WORKLOAD='' SCALE=full
while (($#)); do
    case $1 in
        --workload) WORKLOAD=$2 ;;
        --scale) SCALE=$2 ;;
        *) die "unknown argument $1" ;;
    esac
    shift 2
done
WL_DIR=$HERE/$WORKLOAD
[[ -f $WL_DIR/weights ]] || die "--workload must name a directory of $HERE"
read_weights "$WL_DIR"
TMP=$(mktemp -d /tmp/advisor-check-XXXXXX)
chmod 755 "$TMP"
PG_STARTED=''
trap 'stop_cluster; cp "$TMP/postgres.log" /tmp/advisor-check-$WORKLOAD-postgres.log 2>/dev/null; rm -rf "$TMP"' EXIT

start_cluster shared_preload_libraries=auto_explain "log_line_prefix='%m [%p] app=%a '"
load_workload oracle "$SCALE" "$WL_DIR"
q oracle -f "$WL_DIR/oracle.sql"
q oracle -c analyze
: >"$TMP/runs.log"
for c in "${CLASSES[@]}"; do
    for plan in generic custom; do
        # shellcheck disable=SC2046
        PGAPPNAME=check:$c:$plan PGOPTIONS="-c plan_cache_mode=force_${plan}_plan -c auto_explain.log_min_duration=0" \
            pgbench -n -h 127.0.0.1 -p "$PGPORT" -U postgres -M extended -c 1 -t 6 \
            $(pgbench_vars "$WL_DIR" "$SCALE") -f "$WL_DIR/classes/$c.sql" oracle >>"$TMP/runs.log" 2>&1 \
            || { tail -n 20 "$TMP/runs.log" >&2; die "pgbench failed for $c ($plan)"; }
    done
done
sleep 1
OUT=$WL_DIR/check_oracle.txt
python3 - "$TMP/postgres.log" "$WL_DIR/oracle.sql" "$WORKLOAD" "$SCALE" "${CLASSES[@]}" >"$OUT" <<'EOF'
import re, sys
log_path, oracle_path, workload, scale, classes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
oracle = re.findall(r"create index (\w+)", open(oracle_path).read(), re.I)
plans = {}  # (class, plan mode) -> {statement: set of access paths}
entry = None
for line in open(log_path):
    m = re.search(r"app=check:(\w+):(\w+) LOG:  duration: [0-9.]+ ms  plan:", line)
    if m:
        entry = plans.setdefault((m.group(1), m.group(2)), {}), None
        continue
    if entry is None or not line.startswith("\t"):
        if not line.startswith("\t"):
            entry = None
        continue
    stmts, current = entry
    text = line.strip()
    if text.startswith("Query Text:"):
        current = re.sub(r"\s+", " ", text[len("Query Text:"):]).strip()
        stmts.setdefault(current, set())
        entry = stmts, current
        continue
    if current is None:
        continue
    for pat in (r"Index (?:Only )?Scan(?: Backward)? using (\w+)", r"Bitmap Index Scan on (\w+)"):
        for name in re.findall(pat, text):
            stmts[current].add(name)
    for name in re.findall(r"Seq Scan on (\w+)", text):
        stmts[current].add("SEQ SCAN " + name)
print(f"# Oracle check: {workload} ({scale}); plans of each class's statements (auto_explain,")
print("# pgbench -M extended), under force_generic_plan and force_custom_plan.\n")
used = {"generic": set(), "custom": set()}
for c in classes:
    print(f"## {c}")
    for mode in ("generic", "custom"):
        for stmt, paths in sorted(plans.get((c, mode), {}).items()):
            if not paths:
                continue
            used[mode] |= paths
            short = stmt if len(stmt) <= 150 else stmt[:147] + "..."
            print(f"  [{mode:7}] {', '.join(sorted(paths))}\n            {short}")
    print()
print("## Oracle indexes")
ok = True
for name in oracle:
    g, cu = name in used["generic"], name in used["custom"]
    ok &= g and cu
    print(f"  {name}: generic plan {'uses it' if g else 'DOES NOT use it'}, custom plan {'uses it' if cu else 'DOES NOT use it'}")
print("\nRESULT:", "every oracle index is used under both plan modes" if ok else "SOME ORACLE INDEX IS UNUSED")
EOF
cat "$OUT"
