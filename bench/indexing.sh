#!/usr/bin/env bash
# Indexing effectiveness (issue 4): does IndexPilot, with its default
# settings, index a hot filtered-but-unindexed query on a large table within
# a minute, how much faster does that query get through the proxy, and does
# it leave a write-heavy table's cheap-to-filter column alone?
#
# Usage: bench/indexing.sh            (run as root; PostgreSQL runs as `postgres`)
#
# Environment (all optional):
#   INDEXPILOT_BIN  proxy binary; default: cargo build --release
#   PG_BIN          PostgreSQL bin dir; default: pg_config --bindir
#   ROWS            rows of the large table; default 1000000
#   DURATION        seconds of traffic per trial (covers the 60 s verification); default 80
#   TRIALS          trials (fresh proxy, index dropped, log cleared); default 3
#   CLIENTS         pgbench clients of the hot query; default 4
#   HYPOPG          1 (default): CREATE EXTENSION hypopg when installed
#
# Each trial: the proxy starts with defaults except admin.dsn and
# indexer.mode=apply, then two pgbench runs go through it at once:
#   hot:    SELECT ... FROM accounts WHERE account_no = $1   (no index)
#   events: 1000 UPDATEs of events.code per SELECT ... WHERE code = $1
#           on a 20 000-row table (cheap to scan, expensive to index)
# From pgbench's per-transaction logs and the mutation log it reports the
# time from the first hot query to the index being built, p95 of the hot
# query before the build started and after it finished, and what the
# indexer decided for events.code. Medians over trials.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ROWS=${ROWS:-1000000}
DURATION=${DURATION:-80}
TRIALS=${TRIALS:-3}
CLIENTS=${CLIENTS:-4}
HYPOPG=${HYPOPG:-1}

BENCH=indexing.sh
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

trap cleanup_proxy_and_cluster EXIT
trap 'exit 130' INT TERM

seed() {
    log "seeding accounts ($ROWS rows) and events (20000 rows)"
    sql "create table accounts (id bigserial primary key, tenant_id int not null,
                                account_no bigint not null, email text not null,
                                balance numeric(12, 2) not null, note text);
         insert into accounts (tenant_id, account_no, email, balance, note)
           select g % 1000, g * 7 + 13, 'user' || g || '@example.org', (g % 10000) / 100.0,
                  md5(g::text) || md5((g + 1)::text)
           from generate_series(1, $ROWS) g;
         create table events (id int primary key, code int not null, counter int not null default 0,
                              payload text not null);
         insert into events (id, code, payload)
           select g, g, md5(g::text) from generate_series(1, 20000) g;"
    sql "vacuum analyze accounts"
    sql "vacuum analyze events"
    if [[ $HYPOPG == 1 ]] && sql "select 1 from pg_available_extensions where name = 'hypopg'" | grep -q 1; then
        sql "create extension hypopg"
        log "HypoPG $(sql "select extversion from pg_extension where extname = 'hypopg'") installed: decisions are checked by the planner"
    else
        log "HypoPG not installed: decisions use the documented estimate"
    fi
    cat >"$WORK/hot.sql" <<EOF
\set a random(1, $ROWS) * 7 + 13
select id, balance from accounts where account_no = :a;
EOF
    cat >"$WORK/events_write.sql" <<'EOF'
\set id random(1, 20000)
\set c random(1, 20000)
update events set code = :c, counter = counter + 1 where id = :id;
EOF
    cat >"$WORK/events_read.sql" <<'EOF'
\set c random(1, 20000)
select id, counter from events where code = :c;
EOF
}

trial() {
    local n=$1 dir="$WORK/trial$n"
    mkdir -p "$dir" && chown postgres "$dir"
    # A clean slate: no index of ours, no statistics, no lineage.
    for idx in $(sql "select quote_ident(schemaname) || '.' || quote_ident(indexname) from pg_indexes where indexname like 'indexpilot\_%'"); do
        sql "drop index $idx"
    done
    sql "drop schema if exists indexpilot cascade; select pg_stat_reset();" >/dev/null
    start_apply_proxy
    local started
    started=$(python3 -c 'import time; print(time.time())')
    (cd "$dir" && "$PG_BIN/pgbench" -n -T "$DURATION" -c "$CLIENTS" -j 2 -M prepared -f "$WORK/hot.sql" \
        -l --log-prefix=tx_hot -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres >"$dir/hot.out" 2>&1) &
    local hot=$!
    (cd "$dir" && "$PG_BIN/pgbench" -n -T "$DURATION" -c 2 -j 1 -M prepared \
        -f "$WORK/events_write.sql@1000" -f "$WORK/events_read.sql@1" \
        -l --log-prefix=tx_events -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres >"$dir/events.out" 2>&1) &
    local events=$!
    wait "$hot" || { cat "$dir/hot.out" >&2; die "hot pgbench failed"; }
    wait "$events" || { cat "$dir/events.out" >&2; die "events pgbench failed"; }
    sql "select coalesce(json_agg(m order by id), '[]') from (
           select id, parent_id, kind, table_name, columns, index_name, outcome, reason, evidence,
                  extract(epoch from at) as at_epoch
           from indexpilot.mutation_log) m" >"$dir/log.json"
    stop_pid "$PROXY_PID"
    PROXY_PID=''
    python3 "$HERE/indexing.py" trial "$dir" "$started" >>"$WORK/trials.jsonl"
    log "trial $n: $(tail -n 1 "$WORK/trials.jsonl")"
}

# What an index on events.code would really cost and save, measured
# directly against PostgreSQL (no proxy): update throughput and read latency
# without and with it, alternating, two rounds each.
tps_of() { sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p'; }
lat_of() { sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'; }
write_cost() {
    local round idx w r
    for round in 1 2; do
        for idx in without with; do
            [[ $idx == with ]] && sql "create index events_code_probe on events (code)"
            w=$("$PG_BIN/pgbench" -n -T 8 -c 2 -j 1 -M prepared -f "$WORK/events_write.sql" \
                -h 127.0.0.1 -p "$PGPORT" -U postgres postgres 2>&1 | tps_of)
            r=$("$PG_BIN/pgbench" -n -T 4 -c 1 -M prepared -f "$WORK/events_read.sql" \
                -h 127.0.0.1 -p "$PGPORT" -U postgres postgres 2>&1 | lat_of)
            [[ $idx == with ]] && sql "drop index events_code_probe"
            echo "{\"index\": \"$idx\", \"update_tps\": $w, \"read_ms\": $r}" >>"$WORK/writecost.jsonl"
        done
    done
}

main() {
    [[ $(id -u) -eq 0 ]] || die "run as root (PostgreSQL is started as the postgres user)"
    command -v python3 >/dev/null || die "python3 is required"
    PG_BIN=$(find_pg_bin)
    build_proxy
    WORK=$(mktemp -d /tmp/indexpilot-indexing.XXXXXX)
    chown postgres "$WORK"
    PG_EXTRA="-c shared_buffers=256MB" start_cluster
    seed
    local n
    for ((n = 1; n <= TRIALS; n++)); do
        trial "$n"
    done
    echo "accounts: $ROWS rows; ${DURATION}s per trial, $TRIALS trials, $CLIENTS hot clients + 2 events clients, $(nproc) CPUs; medians over trials"
    echo
    python3 "$HERE/indexing.py" report "$WORK/trials.jsonl"
    log "measuring what an index on events.code would cost (direct, no proxy)"
    write_cost
    echo
    python3 "$HERE/indexing.py" writecost "$WORK/writecost.jsonl" "$WORK/trials.jsonl"
}

main "$@"
