#!/usr/bin/env bash
# Proxy overhead: pgbench -S against PostgreSQL directly, through PgBouncer
# (session mode) and through IndexPilot, on a throwaway cluster.
#
# Usage: bench/overhead.sh            (run as root; PostgreSQL runs as `postgres`)
#
# Environment (all optional):
#   INDEXPILOT_BIN  proxy binary to use; default: cargo build --release
#   PG_BIN          PostgreSQL bin dir; default: pg_config --bindir
#   TARGETS         default "direct pgbouncer indexpilot"; also "inspect-only":
#                   IndexPilot with statement analysis off (the hook only times
#                   and counts round trips), to measure what analysis costs
#   MODES           pgbench -M values; default "simple prepared"
#   CLIENTS         pgbench -c values; default "1 16 64"
#   DURATION        seconds per pgbench run; default 5
#   RUNS            rounds; default 3
#   SCALE           pgbench -i scale; default 10
#   OUT             also write the raw per-run results to this CSV
#   INDEXPILOT_ARGS extra `serve` flags, e.g. "--set worker_threads=2"
#
# Both proxies start in their own session (setsid), as daemons do: with the
# kernel's scheduler autogrouping on, a process sharing pgbench's session
# would also share its CPU share, which would skew the comparison.
#
# Prints a Markdown table: per (mode, clients, target) the median over rounds
# of TPS, mean and p99 latency, and TPS as a ratio of direct (median of
# per-round ratios; targets run back to back within a round).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TARGETS=${TARGETS:-direct pgbouncer indexpilot}
MODES=${MODES:-simple prepared}
CLIENTS=${CLIENTS:-1 16 64}
DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
SCALE=${SCALE:-10}
INDEXPILOT_ARGS=${INDEXPILOT_ARGS:-}

BENCH=overhead.sh
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

PGBOUNCER_PID='' INDEXPILOT_PID='' INSPECT_PID='' PG_STARTED='' WORK=''
cleanup() {
    set +e
    [[ -n $INDEXPILOT_PID ]] && stop_pid "$INDEXPILOT_PID"
    [[ -n $INSPECT_PID ]] && stop_pid "$INSPECT_PID"
    if [[ -n $PGBOUNCER_PID ]]; then
        [[ -s $WORK/pgbouncer.pid ]] && stop_pid "$(cat "$WORK/pgbouncer.pid")"
        stop_pid "$PGBOUNCER_PID"
    fi
    [[ -n $PG_STARTED ]] && as_pg "$PG_BIN/pg_ctl" stop -D "$WORK/data" -m immediate -s >/dev/null 2>&1
    [[ -n $WORK ]] && rm -rf "$WORK"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_postgres() {
    start_cluster
    log "pgbench -i -s $SCALE"
    "$PG_BIN/pgbench" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PGPORT" -U postgres postgres >"$WORK/init.log" 2>&1 \
        || { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }
}

start_pgbouncer() {
    local pgbouncer
    pgbouncer=$(command -v pgbouncer || true)
    [[ -n $pgbouncer ]] || die "pgbouncer not found; install it (apt-get install pgbouncer) or drop it from TARGETS"
    BOUNCER_PORT=$(free_port)
    echo '"postgres" ""' >"$WORK/userlist.txt"
    cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
postgres = host=127.0.0.1 port=$PGPORT dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 80
ignore_startup_parameters = extra_float_digits
pidfile = $WORK/pgbouncer.pid
EOF
    chown postgres "$WORK/pgbouncer.ini" "$WORK/userlist.txt"
    setsid runuser -u postgres -- "$pgbouncer" "$WORK/pgbouncer.ini" >>"$WORK/pgbouncer.log" 2>&1 </dev/null &
    PGBOUNCER_PID=$!
    wait_ready "$BOUNCER_PORT" pgbouncer "$PGBOUNCER_PID"
    log "PgBouncer $("$pgbouncer" --version | awk 'NR==1 {print $2}') on port $BOUNCER_PORT"
}

start_indexpilot() {
    INDEXPILOT_PORT=$(free_port)
    setsid "$BIN" serve --listen "127.0.0.1:$INDEXPILOT_PORT" --upstream "postgres://127.0.0.1:$PGPORT" \
        $INDEXPILOT_ARGS >"$WORK/indexpilot.log" 2>&1 </dev/null &
    INDEXPILOT_PID=$!
    wait_ready "$INDEXPILOT_PORT" indexpilot "$INDEXPILOT_PID"
    log "IndexPilot on port $INDEXPILOT_PORT"
}

start_inspect_only() {
    INSPECT_PORT=$(free_port)
    setsid "$BIN" serve --listen "127.0.0.1:$INSPECT_PORT" --upstream "postgres://127.0.0.1:$PGPORT" \
        --set analysis.enabled=false --set metrics_listen=off \
        $INDEXPILOT_ARGS >"$WORK/inspect-only.log" 2>&1 </dev/null &
    INSPECT_PID=$!
    wait_ready "$INSPECT_PORT" inspect-only "$INSPECT_PID"
    log "IndexPilot (inspection only) on port $INSPECT_PORT"
}

# After a failed run: says whether the target's process is still up, and
# shows the end of its log (the temp dir is removed on exit).
report_target() {
    local pid
    case $1 in
        pgbouncer) pid=$PGBOUNCER_PID ;;
        indexpilot) pid=$INDEXPILOT_PID ;;
        inspect-only) pid=$INSPECT_PID ;;
        *) return 0 ;;
    esac
    if kill -0 "$pid" 2>/dev/null; then
        log "$1 (pid $pid) is still running"
    else
        local status=0
        wait "$pid" || status=$?
        log "$1 (pid $pid) has exited with status $status"
    fi
    log "last lines of $1's log:"
    tail -n 30 "$WORK/$1.log" >&2 || true
}

port_of() {
    case $1 in
        direct) echo "$PGPORT" ;;
        pgbouncer) echo "$BOUNCER_PORT" ;;
        indexpilot) echo "$INDEXPILOT_PORT" ;;
        inspect-only) echo "$INSPECT_PORT" ;;
        *) die "unknown target $1" ;;
    esac
}

# One pgbench run; appends a CSV row to $RAW.
run_one() {
    local round=$1 mode=$2 clients=$3 target=$4
    local jobs=$((clients > 1 ? 2 : 1)) dir="$WORK/run" out
    rm -rf "$dir" && mkdir "$dir"
    if ! out=$(cd "$dir" && "$PG_BIN/pgbench" -S -n -T "$DURATION" -c "$clients" -j "$jobs" -M "$mode" \
        -l --log-prefix=tx -h 127.0.0.1 -p "$(port_of "$target")" -U postgres postgres 2>&1); then
        echo "$out" >&2
        report_target "$target"
        die "pgbench failed: target=$target mode=$mode clients=$clients"
    fi
    local tps lat
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")
    [[ -n $tps ]] || { echo "$out" >&2; die "no TPS in pgbench output"; }
    read -r mean p99 _ < <(python3 "$HERE/summarize.py" latency "$dir"/tx.*)
    echo "$round,$mode,$clients,$target,$tps,$mean,$p99" >>"$RAW"
    log "round $round $mode c=$clients $target: tps=$tps mean=${mean}ms p99=${p99}ms"
}

# Rotates the target order each round so no target always runs first.
run_rounds() {
    local targets=($TARGETS) round mode clients i
    local n=${#targets[@]}
    for ((round = 1; round <= RUNS; round++)); do
        for mode in $MODES; do
            for clients in $CLIENTS; do
                for ((i = 0; i < n; i++)); do
                    run_one "$round" "$mode" "$clients" "${targets[(i + round - 1) % n]}"
                done
            done
        done
    done
}

main() {
    [[ $(id -u) -eq 0 ]] || die "run as root (PostgreSQL and PgBouncer are started as the postgres user)"
    command -v python3 >/dev/null || die "python3 is required"
    PG_BIN=$(find_pg_bin)
    { has_target indexpilot || has_target inspect-only; } && build_proxy
    WORK=$(mktemp -d /tmp/indexpilot-bench.XXXXXX)
    chown postgres "$WORK"
    RAW=$WORK/raw.csv
    echo "round,mode,clients,target,tps,mean_ms,p99_ms" >"$RAW"

    start_postgres
    has_target pgbouncer && start_pgbouncer
    has_target indexpilot && start_indexpilot
    has_target inspect-only && start_inspect_only
    run_rounds

    [[ -n ${OUT:-} ]] && cp "$RAW" "$OUT"
    echo "pgbench -S, scale $SCALE, ${DURATION}s per run, $RUNS rounds, $(nproc) CPUs; medians over rounds"
    echo
    python3 "$HERE/summarize.py" report "$RAW"
}

main "$@"
