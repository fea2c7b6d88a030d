#!/usr/bin/env bash
# Advisor benchmark: one workload, three configurations on copies of the
# same data: none (launch indexes), oracle (oracle.sql), product (what
# IndexPilot in apply mode, with its defaults, built from the workload fed
# through it). Measured directly against PostgreSQL, interleaved, --reps
# times; summary.md/summary.json under bench/advisor/results/. See README.md.
#
# Usage (as root; PostgreSQL runs as the postgres OS user):
#   bench/advisor/run.sh --workload tpcc|tickets [--bin PATH] [--reps 3]
#       [--warmup 600] [--duration 30] [--write-duration 20] [--scale full|small]
#       [--clients 4] [--mode extended|prepared] [--raw DIR] [--note TEXT]
# Smoke test: --scale small --warmup 60 --duration 10 --write-duration 5 --reps 1
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
NAME=advisor
# shellcheck source=bench/advisor/lib.sh
source "$HERE/lib.sh"

WORKLOAD='' BIN=$REPO/target/release/indexpilot REPS=3 WARMUP=600 DURATION=30 WRITE_DURATION=20
SCALE=full CLIENTS=4 MODE=extended RAW='' NOTE=''
while (($#)); do
    case $1 in
        --workload) WORKLOAD=$2 ;;
        --bin) BIN=$2 ;;
        --reps) REPS=$2 ;;
        --warmup) WARMUP=$2 ;;
        --duration) DURATION=$2 ;;
        --write-duration) WRITE_DURATION=$2 ;;
        --scale) SCALE=$2 ;;
        --clients) CLIENTS=$2 ;;
        --mode) MODE=$2 ;;
        --raw) RAW=$2 ;;
        --note) NOTE=$2 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift 2 || die "$1 needs a value"
done
WL_DIR=$HERE/$WORKLOAD
[[ -n $WORKLOAD && -f $WL_DIR/weights ]] || die "--workload must name a directory of $HERE with a weights file"
[[ $SCALE == full || $SCALE == small ]] || die "--scale is full or small"
[[ $MODE == extended || $MODE == prepared ]] || die "--mode is extended or prepared"
[[ -x $BIN ]] || die "proxy binary $BIN is missing (build it, or pass --bin)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
PGBENCH=$(command -v pgbench) || die "pgbench not found"
[[ $(id -u) == 0 ]] || die "run as root (the cluster runs as the postgres OS user)"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$HERE/results/$WORKLOAD-$STAMP
RAW=${RAW:-/tmp/advisor-raw-$WORKLOAD-$STAMP}
TMP=$(mktemp -d /tmp/advisor-run-XXXXXX)
mkdir -p "$RAW" "$RESULTS"
[[ -n $NOTE ]] && printf '%s\n' "$NOTE" >"$RAW/note"
chmod 755 "$TMP"
read_weights "$WL_DIR"
CONFIGS=(none oracle product)

PROXY_PID='' POLL_PID='' PG_STARTED=''
cleanup() {
    set +e
    [[ -n $POLL_PID ]] && kill "$POLL_PID" 2>/dev/null && wait "$POLL_PID" 2>/dev/null
    if [[ -n $PROXY_PID ]]; then
        kill "$PROXY_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$PROXY_PID" 2>/dev/null
    fi
    [[ -n $PG_STARTED ]] && cp "$TMP/postgres.log" "$RAW/postgres.log" 2>/dev/null
    stop_cluster
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pgbench against database $1 on port $2; the rest are pgbench arguments.
bench() {
    local db=$1 port=$2; shift 2
    # shellcheck disable=SC2046
    "$PGBENCH" -n -h 127.0.0.1 -p "$port" -U postgres -M "$MODE" -c "$CLIENTS" -j 2 --max-tries=5 \
        $(pgbench_vars "$WL_DIR" "$SCALE") "$@" "$db"
}

# Every index of the public schema: name, table, bytes, valid, definition.
index_inventory() {
    q "$1" -F $'\t' -c "select c.relname, t.relname, pg_relation_size(c.oid), i.indisvalid,
                               pg_get_indexdef(c.oid), coalesce(s.idx_scan, 0)
                        from pg_index i join pg_class c on c.oid = i.indexrelid
                        join pg_class t on t.oid = i.indrelid
                        join pg_namespace n on n.oid = t.relnamespace
                        left join pg_stat_user_indexes s on s.indexrelid = c.oid
                        where n.nspname = 'public' order by 1"
}

write_meta() {
    python3 - "$RAW/meta.json" <<EOF
import json, sys
meta = dict(workload="$WORKLOAD", scale="$SCALE", reps=$REPS, warmup_s=$WARMUP,
            duration_s=$DURATION, write_duration_s=$WRITE_DURATION, clients=$CLIENTS,
            mode="$MODE", bin="$BIN", bin_sha256="$(sha256sum "$BIN" | cut -c1-16)",
            bin_version="$("$BIN" --version 2>/dev/null)", stamp="$STAMP",
            classes=[c for c in "${CLASSES[*]}".split()],
            weights={k: int(v) for k, v in [p.split("=") for p in "$(for c in "${CLASSES[@]}"; do printf '%s=%s ' "$c" "${WEIGHTS[$c]}"; done)".split()]},
            writes=[c for c in "$(for c in "${CLASSES[@]}"; do [[ ${WRITES[$c]} == 1 ]] && printf '%s ' "$c"; done)".split()],
            scale_vars=open("$WL_DIR/scale.$SCALE").read().split(),
            cluster_settings="${CLUSTER_SETTINGS[*]}".split(),
            postgres="$("$PG_BIN/postgres" --version)", hypopg=bool("$HYPOPG"),
            load_before="$LOAD_BEFORE", results_dir="$RESULTS", raw_dir="$RAW")
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
}

prepare() {
    start_cluster
    load_workload tpl "$SCALE" "$WL_DIR"
    HYPOPG=$(q tpl -c "select 1 from pg_extension where extname = 'hypopg'")
    index_inventory tpl >"$RAW/indexes-tpl.tsv"
    q postgres -c checkpoint
    local cfg
    for cfg in "${CONFIGS[@]}"; do
        q postgres -c "create database \"$cfg\" template tpl"
    done
    local t0=$SECONDS
    q oracle -f "$WL_DIR/oracle.sql"
    q oracle -c analyze
    log "oracle indexes built in $((SECONDS - t0)) s"
}

# Every ~5 s: the indexes of the product database (building = not yet valid).
poll_indexes() {
    while :; do
        q product -F $'\t' -c "select extract(epoch from clock_timestamp()), c.relname, i.indisvalid,
                                      pg_relation_size(c.oid), pg_get_indexdef(c.oid)
                               from pg_index i join pg_class c on c.oid = i.indexrelid
                               join pg_namespace n on n.oid = c.relnamespace
                               where n.nspname = 'public'" >>"$RAW/poll.tsv" 2>/dev/null || true
        echo "$(date +%s.%N)	__poll__" >>"$RAW/poll.tsv"
        sleep 5
    done
}

learn() {
    local port metrics dsn
    port=$(free_port)
    metrics=$(free_port)
    dsn="host=127.0.0.1 port=$PGPORT user=postgres dbname=product"
    # Only what the proxy needs to run here; every indexer setting is its default.
    cat >"$RAW/proxy.toml" <<EOF
listen = "127.0.0.1:$port"
upstream = "postgres://127.0.0.1:$PGPORT"
metrics_listen = "127.0.0.1:$metrics"

[admin]
dsn = "$dsn"

[indexer]
mode = "apply"
EOF
    setsid "$BIN" serve --config "$RAW/proxy.toml" >"$RAW/proxy.log" 2>&1 </dev/null &
    PROXY_PID=$!
    local deadline=$((SECONDS + 30))
    until "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d product -Atqc 'select 1' >/dev/null 2>&1; do
        kill -0 "$PROXY_PID" 2>/dev/null || { tail -n 20 "$RAW/proxy.log" >&2; die "proxy exited"; }
        ((SECONDS < deadline)) || die "proxy not accepting on $port after 30 s"
        sleep 0.2
    done
    poll_indexes &
    POLL_PID=$!
    log "product: feeding the workload through the proxy (port $port) for $WARMUP s"
    date +%s.%N >"$RAW/traffic_start"
    # shellcheck disable=SC2046
    bench product "$port" -T "$WARMUP" -P 60 $(script_args "$WL_DIR" all) >"$RAW/learn.out" 2>&1 \
        || log "WARNING: pgbench during the learning phase exited $? (see $RAW/learn.out)"
    date +%s.%N >"$RAW/traffic_end"
    # A build in flight finishes (or is cleaned up) before the proxy stops.
    deadline=$((SECONDS + 180))
    while [[ -n $(q product -c "select 1 from pg_stat_progress_create_index union all
                                select 1 from pg_index i join pg_class c on c.oid = i.indexrelid
                                where not i.indisvalid limit 1") ]] && ((SECONDS < deadline)); do
        sleep 2
    done
    kill "$POLL_PID"; wait "$POLL_PID" 2>/dev/null || true; POLL_PID=''
    "$BIN" lineage --dsn "$dsn" --limit 1000000 >"$RAW/lineage.txt" 2>&1 || log "WARNING: lineage failed"
    "$BIN" lineage --dsn "$dsn" --limit 1000000 --json >"$RAW/lineage.json" 2>"$RAW/lineage.err" || log "WARNING: lineage --json failed"
    "$BIN" advise --dsn "$dsn" >"$RAW/advise.txt" 2>&1 || log "WARNING: advise failed"
    kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=''
    q product -c analyze
    log "product: proxy stopped; $(q product -c "select count(*) from pg_indexes where schemaname = 'public'") indexes in public"
}

# Caches filled and dirty pages written before each measured run.
settle() {
    q "$1" -c "select count(pg_prewarm(c.oid)) from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = 'public' and c.relkind in ('r', 'i')" >/dev/null 2>&1 || true
    q "$1" -c checkpoint
}

measure() {
    local rep cfg tag
    for cfg in "${CONFIGS[@]}"; do index_inventory "$cfg" >"$RAW/indexes-$cfg.tsv"; done
    for ((rep = 1; rep <= REPS; rep++)); do
        for cfg in "${CONFIGS[@]}"; do
            tag=$cfg-r$rep
            settle "$cfg"
            # shellcheck disable=SC2046
            bench "$cfg" "$PGPORT" -T 5 $(script_args "$WL_DIR" all) >"$RAW/warm-$tag.out" 2>&1 || true
            # shellcheck disable=SC2046
            bench "$cfg" "$PGPORT" -T "$DURATION" --log --log-prefix="$RAW/mixed-$tag" \
                $(script_args "$WL_DIR" all) >"$RAW/mixed-$tag.out" 2>&1 \
                || log "WARNING: mixed $tag: pgbench exited $?"
            # shellcheck disable=SC2046
            bench "$cfg" "$PGPORT" -T "$WRITE_DURATION" $(script_args "$WL_DIR" writes) \
                >"$RAW/writes-$tag.out" 2>&1 || log "WARNING: writes $tag: pgbench exited $?"
            log "rep $rep $cfg: mixed $(grep -m1 -o 'tps = [0-9.]*' "$RAW/mixed-$tag.out"), writes $(grep -m1 -o 'tps = [0-9.]*' "$RAW/writes-$tag.out")"
        done
    done
    for cfg in "${CONFIGS[@]}"; do index_inventory "$cfg" >"$RAW/indexes-end-$cfg.tsv"; done
}

T_START=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "workload $WORKLOAD ($SCALE), bin $BIN, raw logs in $RAW"
prepare
learn
measure
write_meta
echo "$(cut -d' ' -f1-3 /proc/loadavg)" >"$RAW/load_after"
echo "$((SECONDS - T_START))" >"$RAW/elapsed_s"
python3 "$HERE/summarize.py" "$RAW" "$RESULTS"
log "done in $((SECONDS - T_START)) s: $RESULTS/summary.md"
