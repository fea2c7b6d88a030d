#!/usr/bin/env bash
# Per-tenant partial indexes vs one shared composite (issue 5): a custom
# field used by few tenants. IndexPilot (apply mode, defaults) watches the
# traffic and picks its indexes; then both layouts are measured directly
# against PostgreSQL, alternating: total index size for the field, p95 of
# the field's lookups, and INSERT throughput across all tenants.
#
# Usage: bench/expression.sh          (run as root; PostgreSQL runs as `postgres`)
#
# Environment (all optional):
#   INDEXPILOT_BIN  proxy binary; default: cargo build --release
#   PG_BIN          PostgreSQL bin dir; default: pg_config --bindir
#   TENANTS         default 200; ROWS per tenant default 5000
#   USERS           tenants using custom_1 (the first ones); default 3
#   DURATION        seconds per measurement; default 10
#   ROUNDS          alternating rounds of the layouts; default 3
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TENANTS=${TENANTS:-200}
ROWS=${ROWS:-5000}
USERS=${USERS:-3}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}

BENCH=expression.sh
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

trap cleanup_proxy_and_cluster EXIT
trap 'exit 130' INT TERM

seed() {
    log "seeding contacts: $TENANTS tenants x $ROWS rows; custom_1 set for tenants 0..$((USERS - 1))"
    sql "create table contacts (id bigserial primary key, tenant_id int not null, email text not null,
                                custom_1 text, note text);
         insert into contacts (tenant_id, email, custom_1, note)
           select g % $TENANTS, 'user' || g || '@example.org',
                  case when g % $TENANTS < $USERS then 'c' || g end, md5(g::text)
           from generate_series(0, $((TENANTS * ROWS)) - 1) g;
         create index contacts_tenant on contacts (tenant_id);"
    sql "vacuum analyze contacts"
    SEEDED=$(sql "select max(id) from contacts")
    cat >"$WORK/lookup.sql" <<EOF
\\set t random(0, $((USERS - 1)))
\\set i random(0, $((ROWS - 1)))
select id, note from contacts where tenant_id = :t and custom_1 = 'c' || (:i * $TENANTS + :t);
EOF
    cat >"$WORK/email.sql" <<EOF
\\set t random(0, $((TENANTS - 1)))
\\set i random(0, $((ROWS - 1)))
select id from contacts where tenant_id = :t and email = 'user' || (:i * $TENANTS + :t) || '@example.org';
EOF
    cat >"$WORK/insert.sql" <<EOF
\\set t random(0, $((TENANTS - 1)))
\\set n random(1, 1000000000)
\\if :t < $USERS
insert into contacts (tenant_id, email, custom_1, note) values (:t, 'new' || :n, 'n' || :n, 'x');
\\else
insert into contacts (tenant_id, email, note) values (:t, 'new' || :n, 'x');
\\endif
EOF
}

# IndexPilot in apply mode with its defaults, under the field's traffic
# plus email lookups by every tenant (so that all tenants are active), until
# it has built its indexes for custom_1 (or 120 s).
let_indexpilot_choose() {
    start_apply_proxy
    log "IndexPilot (apply, defaults) watching $USERS tenants look up custom_1"
    local deadline=$((SECONDS + 120)) built=0
    while ((SECONDS < deadline)); do
        "$PG_BIN/pgbench" -n -T 5 -c 4 -j 2 -M prepared -f "$WORK/lookup.sql@1" -f "$WORK/email.sql@1" \
            -h 127.0.0.1 -p "$PROXY_PORT" -U postgres postgres >/dev/null 2>&1 || true
        built=$(sql "select count(*) from indexpilot.mutation_log
                      where kind = 'create' and outcome = 'built' and 'custom_1' = any(columns)")
        ((built >= USERS)) && break
    done
    sql "select kind || ': ' || coalesce(tenant, '*') || ' ' || array_to_string(columns, ',') || ' — ' || reason
           from indexpilot.mutation_log where kind in ('create', 'advise') and 'custom_1' = any(columns)
          order by id" >"$WORK/choice.txt"
    stop_pid "$PROXY_PID"
    PROXY_PID=''
    sql "select indexdef from pg_indexes where indexname like 'indexpilot\_%' and indexdef like '%custom_1%'
          order by 1" >"$WORK/partials.sql"
    log "IndexPilot built $built index(es) on custom_1:"
    sed 's/^/    /' "$WORK/partials.sql" >&2
}

layout() {
    local which=$1
    sql "select 'drop index ' || quote_ident(indexname) from pg_indexes
          where tablename = 'contacts' and indexdef like '%custom_1%'" | while read -r stmt; do sql "$stmt"; done
    case $which in
        partial)
            while read -r def; do
                sql "${def/CREATE INDEX indexpilot_/CREATE INDEX bench_partial_}"
            done <"$WORK/partials.sql"
            ;;
        composite) sql "create index bench_composite on contacts (tenant_id, custom_1)" ;;
        none) ;;
    esac
    sql "vacuum analyze contacts"
}

measure() {
    local which=$1 round=$2 dir="$WORK/$which.$round"
    mkdir -p "$dir" && chown postgres "$dir"
    layout "$which"
    local size
    size=$(sql "select coalesce(sum(pg_relation_size(indexrelid)), 0) from pg_index i
                 join pg_class c on c.oid = i.indexrelid
                where i.indrelid = 'contacts'::regclass and pg_get_indexdef(i.indexrelid) like '%custom_1%'")
    (cd "$dir" && "$PG_BIN/pgbench" -n -T "$DURATION" -c 2 -j 2 -M prepared -f "$WORK/lookup.sql" \
        -l --log-prefix=tx_lookup -h 127.0.0.1 -p "$PGPORT" -U postgres postgres >"$dir/lookup.out" 2>&1)
    local tps
    tps=$("$PG_BIN/pgbench" -n -T "$DURATION" -c 2 -j 2 -M prepared -f "$WORK/insert.sql" \
        -h 127.0.0.1 -p "$PGPORT" -U postgres postgres 2>&1 |
        sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p')
    # Back to the seeded rows, so that every measurement starts alike.
    sql "delete from contacts where id > $SEEDED" >/dev/null
    sql "vacuum contacts"
    read -r _ p95 _ < <(python3 "$HERE/summarize.py" latency95 "$dir"/tx_lookup.*)
    echo "$which,$round,$size,$p95,$tps" >>"$WORK/raw.csv"
    log "round $round $which: size=${size}B p95=${p95}ms insert_tps=$tps"
}

main() {
    [[ $(id -u) -eq 0 ]] || die "run as root (PostgreSQL is started as the postgres user)"
    PG_BIN=$(find_pg_bin)
    build_proxy
    WORK=$(mktemp -d /tmp/indexpilot-expression.XXXXXX)
    chown postgres "$WORK"
    start_cluster
    seed
    let_indexpilot_choose
    echo "layout,round,bytes,p95_ms,insert_tps" >"$WORK/raw.csv"
    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        for which in partial composite none; do
            measure "$which" "$round"
        done
    done
    echo "contacts: $TENANTS tenants x $ROWS rows, custom_1 used by $USERS tenants; ${DURATION}s per measurement, $ROUNDS rounds, $(nproc) CPUs; medians"
    echo
    echo "What IndexPilot decided:"
    echo
    sed 's/^/    /' "$WORK/choice.txt"
    echo
    python3 "$HERE/expression.py" "$WORK/raw.csv"
}

main "$@"
