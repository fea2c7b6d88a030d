# Shared helpers of the bench/ scripts: sourced, not run. The caller sets
# BENCH (its name, for messages), REPO and WORK (a temp dir owned by postgres).

die() { echo "$BENCH: $*" >&2; exit 1; }
log() { echo "$BENCH: $*" >&2; }
as_pg() { runuser -u postgres -- "$@"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until `psql` gets an answer through 127.0.0.1:$1, or fails after 30 s.
wait_ready() {
    local port=$1 name=$2 pid=${3:-} deadline=$((SECONDS + 30))
    until "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$WORK/$name.log" >&2 || true
            die "$name exited during start-up (log above)"
        fi
        ((SECONDS < deadline)) || { tail -n 20 "$WORK/$name.log" >&2 || true; die "$name not accepting on port $port after 30 s"; }
        sleep 0.2
    done
}

find_pg_bin() {
    if [[ -n ${PG_BIN:-} ]]; then echo "$PG_BIN"; return; fi
    if command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/initdb ]]; then pg_config --bindir; return; fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $d/initdb ]] && { echo "$d"; return; }
    done
    die "no PostgreSQL binaries found; set PG_BIN"
}

build_proxy() {
    if [[ -n ${INDEXPILOT_BIN:-} ]]; then
        BIN=$INDEXPILOT_BIN
    else
        log "cargo build --release"
        (cd "$REPO" && cargo build --release --quiet)
        BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/indexpilot
    fi
    [[ -x $BIN ]] || die "proxy binary $BIN is missing or not executable"
}

# SIGTERM, then SIGKILL if the process is still there after 5 s.
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}


# initdb + start a throwaway cluster on a free port ($PGPORT), tuned for
# benchmarks (no fsync); extra `-c` settings in $PG_EXTRA.
start_cluster() {
    PGPORT=$(free_port)
    as_pg "$PG_BIN/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync -E UTF8 >"$WORK/initdb.log" 2>&1 \
        || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
    PG_STARTED=1
    as_pg "$PG_BIN/pg_ctl" start -D "$WORK/data" -l "$WORK/postgres.log" -w -s \
        -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 ${PG_EXTRA:-}" \
        || { cat "$WORK/postgres.log" >&2; die "PostgreSQL did not start"; }
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on port $PGPORT"
}

# The indexing benchmarks' shared parts: a psql shorthand on the cluster,
# the proxy in apply mode with its defaults otherwise, and the clean-up of
# both on exit.
sql() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atqc "$1"; }

start_apply_proxy() {
    PROXY_PORT=$(free_port)
    setsid "$BIN" serve --listen "127.0.0.1:$PROXY_PORT" --upstream "postgres://127.0.0.1:$PGPORT" \
        --set "admin.dsn=host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
        --set indexer.mode=apply --set metrics_listen=off >"$WORK/proxy.log" 2>&1 </dev/null &
    PROXY_PID=$!
    wait_ready "$PROXY_PORT" proxy "$PROXY_PID"
}

PROXY_PID='' PG_STARTED='' WORK=''
cleanup_proxy_and_cluster() {
    set +e
    [[ -n $PROXY_PID ]] && stop_pid "$PROXY_PID"
    [[ -n $PG_STARTED ]] && as_pg "$PG_BIN/pg_ctl" stop -D "$WORK/data" -m immediate -s >/dev/null 2>&1
    [[ -n $WORK ]] && rm -rf "$WORK"
    return 0
}
