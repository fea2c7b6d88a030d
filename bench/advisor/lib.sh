# Helpers shared by run.sh and check_oracle.sh: sourced, not run.
# The caller sets NAME (for messages), HERE (this directory) and TMP (a temp
# dir); start_cluster sets PGPORT and PG_BIN.

# die, as_pg, free_port and find_pg_bin (PG_BIN, pg_config, then Debian's
# layout) come from the bench/ scripts' helpers; the advisor's own cluster
# and messages with the time follow.
BENCH=$NAME
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
log() { echo "$NAME [$(date +%H:%M:%S)]: $*" >&2; }

# The cluster every configuration shares: plan quality, not disk luck, is
# the subject (bench/advisor/README.md lists the settings and why).
CLUSTER_SETTINGS=(
    shared_buffers=2GB
    synchronous_commit=off
    random_page_cost=1.1
    jit=off
    max_wal_size=8GB
    checkpoint_timeout=30min
    maintenance_work_mem=256MB
    max_connections=100
    track_io_timing=on
)

# initdb + start as the postgres OS user, on a free port, socket in $TMP.
# Extra `-c` settings may follow as arguments.
start_cluster() {
    PG_BIN=${PG_BIN:-$(find_pg_bin)}
    PGPORT=$(free_port)
    chown postgres: "$TMP"
    as_pg "$PG_BIN/initdb" -D "$TMP/data" -U postgres --auth=trust --no-sync -E UTF8 >"$TMP/initdb.log" 2>&1 \
        || { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
    local opts="-p $PGPORT -k $TMP -c listen_addresses=127.0.0.1" s
    for s in "${CLUSTER_SETTINGS[@]}" "$@"; do opts+=" -c $s"; done
    PG_STARTED=1
    as_pg "$PG_BIN/pg_ctl" start -D "$TMP/data" -l "$TMP/postgres.log" -w -s -t 120 -o "$opts" \
        || { tail -n 30 "$TMP/postgres.log" >&2; die "PostgreSQL did not start"; }
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on port $PGPORT, data in $TMP/data"
}

stop_cluster() {
    [[ -n ${PG_STARTED:-} ]] || return 0
    as_pg "$PG_BIN/pg_ctl" stop -D "$TMP/data" -m fast -s -t 60 >/dev/null 2>&1 \
        || as_pg "$PG_BIN/pg_ctl" stop -D "$TMP/data" -m immediate -s >/dev/null 2>&1
    PG_STARTED=''
}

# psql on database $1 (the rest are psql arguments).
q() {
    local db=$1; shift
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$db" -v ON_ERROR_STOP=1 -X -Atq "$@"
}

# Loads schema + seed into a new database $1 at scale $2 (small|full), with
# hypopg and pg_prewarm when available, then VACUUM ANALYZE.
load_workload() {
    local db=$1 scale=$2 wl_dir=$3
    q postgres -c "create database \"$db\""
    local ext
    for ext in hypopg pg_prewarm; do
        if [[ -n $(q "$db" -c "select 1 from pg_available_extensions where name = '$ext'") ]]; then
            q "$db" -c "create extension $ext"
        else
            log "extension $ext not available: skipped"
        fi
    done
    q "$db" -f "$wl_dir/schema.sql"
    local t0=$SECONDS
    # shellcheck disable=SC2046
    q "$db" $(seed_vars "$wl_dir" "$scale") -f "$wl_dir/seed.sql"
    q "$db" -c "vacuum (analyze, freeze)"
    log "seeded $db ($scale) in $((SECONDS - t0)) s"
}

# `-v NAME=VALUE` for psql and `-D NAME=VALUE` for pgbench, from the
# workload's scale.<small|full> file (lines NAME=VALUE).
seed_vars() {
    local f="$1/scale.$2" line
    [[ -f $f ]] || die "no $f"
    while read -r line; do
        [[ -z $line || $line == \#* ]] && continue
        printf -- '-v %s ' "$line"
    done <"$f"
}
pgbench_vars() {
    local f="$1/scale.$2" line
    while read -r line; do
        [[ -z $line || $line == \#* ]] && continue
        printf -- '-D %s ' "$line"
    done <"$f"
}

# The workload's classes from its `weights` file: lines `class weight rw`.
# Sets CLASSES, WEIGHTS (assoc), WRITES (assoc: 1 for write classes).
read_weights() {
    local f="$1/weights" c w rw
    CLASSES=()
    declare -gA WEIGHTS=() WRITES=()
    while read -r c w rw; do
        [[ -z $c || $c == \#* ]] && continue
        [[ -f $1/classes/$c.sql ]] || die "weights names $c but $1/classes/$c.sql is missing"
        CLASSES+=("$c")
        WEIGHTS[$c]=$w
        [[ $rw == write ]] && WRITES[$c]=1 || WRITES[$c]=0
    done <"$f"
}

# `-f classes/x.sql@w` for every class (all) or the write classes (writes).
script_args() {
    local wl_dir=$1 which=$2 c
    for c in "${CLASSES[@]}"; do
        [[ $which == writes && ${WRITES[$c]} != 1 ]] && continue
        printf -- '-f %s@%s ' "$wl_dir/classes/$c.sql" "${WEIGHTS[$c]}"
    done
}
