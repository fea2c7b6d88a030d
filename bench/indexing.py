#!/usr/bin/env python3
"""Summaries for bench/indexing.sh.

  indexing.py trial DIR STARTED   one trial -> one JSON line on stdout
  indexing.py report TRIALS.jsonl all trials -> Markdown table (medians)
  indexing.py writecost COST.jsonl TRIALS.jsonl   what an index on events.code costs

pgbench -l lines: client tx latency_us script_no epoch_s epoch_us.
"""
import glob
import json
import statistics
import sys


def transactions(pattern):
    """(completion time in s, latency in ms, script number) per transaction."""
    out = []
    for path in glob.glob(pattern):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6:
                    continue
                out.append((int(parts[4]) + int(parts[5]) / 1e6, int(parts[2]) / 1000.0, int(parts[3])))
    return out


def p95(values):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


def trial(directory, started):
    started = float(started)
    log = json.load(open(f"{directory}/log.json"))
    hot = transactions(f"{directory}/tx_hot.*")
    events = transactions(f"{directory}/tx_events.*")
    first = min(t for t, _, _ in hot) if hot else started
    built = [m for m in log if m["kind"] == "create" and m["outcome"] == "built" and m["table_name"] == "accounts"]
    result = {"hot_queries": len(hot)}
    if built:
        create = built[0]
        done = create["at_epoch"]
        build_s = create["evidence"].get("build_ms", 0) / 1000.0
        began = done - build_s
        before = [lat for t, lat, _ in hot if t < began]
        # After: transactions that started once the index was valid.
        after = [lat for t, lat, _ in hot if t - lat / 1000.0 > done]
        result.update(
            index=create["index_name"],
            columns=create["columns"],
            time_to_index_s=round(done - first, 2),
            build_s=round(build_s, 2),
            p95_before_ms=p95(before),
            p95_after_ms=p95(after),
            queries_before=len(before),
            queries_after=len(after),
        )
        if result["p95_before_ms"] and result["p95_after_ms"]:
            result["p95_ratio"] = round(result["p95_before_ms"] / result["p95_after_ms"], 1)
        kept = [m for m in log if m["parent_id"] == create["id"]]
        result["verification"] = [f'{m["kind"]}: {m["reason"]}' for m in kept]
    events_built = [m for m in log if m["kind"] == "create" and m["table_name"] == "events"]
    events_advice = [m for m in log if m["kind"] == "advise" and m["table_name"] == "events"]
    result["events_indexed"] = bool(events_built)
    if events_advice:
        a = events_advice[-1]
        p = a["evidence"]["proposal"]
        result["events_decision"] = a["outcome"]
        result["events_reason"] = a["reason"]
        result["events_reads_per_s"] = round(p["calls_per_sec"], 1)
        result["events_writes_per_s"] = round(p["writes_per_sec"], 1)
        e = p["estimate"]
        result["events_benefit_per_s"] = round(
            (p["planner"]["cost_before"] - p["planner"]["cost_after"]) * p["calls_per_sec"]
            if p.get("planner")
            else e["benefit_per_sec"],
            1,
        )
        result["events_write_overhead_per_s"] = round(e["write_overhead_per_sec"], 1)
    writes = [t for t, _, s in events if s == 0]
    if writes:
        span = max(writes) - min(writes)
        result["events_update_tps"] = round(len(writes) / span, 1) if span > 0 else None
    print(json.dumps(result))


def median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def report(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    print("| trial | index | time to index (s) | build (s) | p95 before (ms) | p95 after (ms) | p95 gain | verification | events.code |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---|")
    for i, r in enumerate(rows, 1):
        decision = (
            "indexed" if r.get("events_indexed") else
            f'{r.get("events_decision", "not proposed")}: {r.get("events_reads_per_s")} reads/s vs '
            f'{r.get("events_writes_per_s")} writes/s, benefit {r.get("events_benefit_per_s")} < '
            f'write overhead {r.get("events_write_overhead_per_s")} cost units/s'
        )
        print(
            f'| {i} | {",".join(r.get("columns", []))} | {r.get("time_to_index_s")} | {r.get("build_s")} | '
            f'{fmt(r.get("p95_before_ms"))} | {fmt(r.get("p95_after_ms"))} | {r.get("p95_ratio")}x | '
            f'{"; ".join(r.get("verification", [])) or "-"} | {decision} |'
        )
    print(
        f'| **median** | | **{median(rows, "time_to_index_s")}** | {median(rows, "build_s")} | '
        f'{fmt(median(rows, "p95_before_ms"))} | {fmt(median(rows, "p95_after_ms"))} | '
        f'**{median(rows, "p95_ratio")}x** | | '
        f'{sum(1 for r in rows if not r.get("events_indexed"))}/{len(rows)} left alone |'
    )


def writecost(path, trials_path):
    trials = [json.loads(line) for line in open(trials_path) if line.strip()]
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = {k: [r for r in rows if r["index"] == k] for k in ("without", "with")}
    tps = {k: statistics.median(r["update_tps"] for r in v) for k, v in by.items()}
    read = {k: statistics.median(r["read_ms"] for r in v) for k, v in by.items()}
    print("events.code measured directly (no proxy), medians of 2 alternating rounds:")
    print()
    print("| index on events.code | UPDATE tps (2 clients) | read latency (ms, 1 client) |")
    print("|---|---:|---:|")
    for k in ("without", "with"):
        print(f"| {k} | {tps[k]:.0f} | {read[k]:.3f} |")
    print()
    print(
        f"With the index: updates {100 * (tps['with'] / tps['without'] - 1):+.1f}%, "
        f"reads {read['without'] / read['with']:.1f}x faster."
    )
    reads = median(trials, "events_reads_per_s")
    writes = median(trials, "events_writes_per_s")
    if reads is not None and writes is not None:
        saved = reads * (read["without"] - read["with"])
        # 2 clients: each UPDATE holds a backend for 2 / tps seconds.
        added = writes * (2 / tps["with"] - 2 / tps["without"]) * 1000
        print(
            f"At the trials' median rates ({reads} reads/s, {writes} writes/s) it would save "
            f"{saved:.1f} ms/s of reads and add {added:.1f} ms/s to writes: "
            f"{'leaving it alone was right' if added > saved else 'it would have paid off'}."
        )


def fmt(v):
    return "-" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    if sys.argv[1] == "trial":
        trial(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "writecost":
        writecost(sys.argv[2], sys.argv[3])
    else:
        report(sys.argv[2])
