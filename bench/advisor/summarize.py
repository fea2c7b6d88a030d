#!/usr/bin/env python3
"""Summarize one advisor-benchmark run (bench/advisor/run.sh).

Usage: summarize.py RAW_DIR RESULTS_DIR

Reads the raw directory run.sh filled (pgbench per-transaction logs and
outputs, index inventories, the index poll of the learning phase, the
lineage) and writes RESULTS_DIR/summary.md and summary.json. Standard
library only.
"""

import glob
import json
import math
import os
import re
import statistics
import sys

CONFIGS = ("none", "oracle", "product")


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def class_latencies(raw, tag, classes):
    """Mean latency (ms), count and failures per class from pgbench's logs.

    Log lines: client_id transaction_no time script_no time_epoch time_us
    [schedule_lag] [retries]; time is in microseconds, or `failed`/`skipped`.
    The script number is the position of the class's -f option.
    """
    sums = [0.0] * len(classes)
    counts = [0] * len(classes)
    failed = [0] * len(classes)
    for path in glob.glob(os.path.join(raw, f"mixed-{tag}.*")):
        if path.endswith(".out"):
            continue
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 4:
                    continue
                script = int(parts[3])
                if parts[2].isdigit():
                    sums[script] += int(parts[2]) / 1000.0
                    counts[script] += 1
                else:
                    failed[script] += 1
    out = {}
    for i, c in enumerate(classes):
        out[c] = {
            "mean_ms": sums[i] / counts[i] if counts[i] else None,
            "n": counts[i],
            "failed": failed[i],
        }
    return out


def tps(path):
    if not os.path.exists(path):
        return None
    text = open(path).read()
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    return float(m.group(1)) if m else None


def pgbench_failures(path):
    if not os.path.exists(path):
        return None
    text = open(path).read()
    m = re.search(r"number of failed transactions: (\d+)", text)
    aborted = len(re.findall(r"client \d+ aborted", text))
    return {"failed": int(m.group(1)) if m else 0, "clients_aborted": aborted}


def spread(values):
    values = [v for v in values if v is not None]
    return [min(values), max(values)] if values else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def indexes_added(raw, cfg, template):
    """Valid indexes of the configuration that the template does not have."""
    added = []
    for row in read_tsv(os.path.join(raw, f"indexes-{cfg}.tsv")):
        name, table, size, valid, definition, _scans = row
        if name in template or valid != "t":
            continue
        added.append({"name": name, "table": table, "bytes": int(size), "definition": definition})
    scans = {r[0]: int(r[5]) for r in read_tsv(os.path.join(raw, f"indexes-end-{cfg}.tsv"))}
    for ix in added:
        ix["idx_scan_after_runs"] = scans.get(ix["name"])
    return added


def timeline(raw, template):
    """Index events of the learning phase from the ~5 s poll of pg_index.

    Returns per-index first seen (building), first valid, last seen, whether
    it is in the final set, and the time from first traffic to the last
    change of the set (the final set). Times in seconds after first traffic.
    """
    start_path = os.path.join(raw, "traffic_start")
    if not os.path.exists(start_path):
        return None
    t0 = float(open(start_path).read())
    t_end = float(open(os.path.join(raw, "traffic_end")).read())
    snapshots, current = [], {}
    for row in read_tsv(os.path.join(raw, "poll.tsv")):
        if len(row) >= 2 and row[1] == "__poll__":
            snapshots.append((float(row[0]), current))
            current = {}
        elif len(row) == 5 and row[1] not in template:
            current[row[1]] = {"valid": row[2] == "t", "bytes": int(row[3]), "definition": row[4]}
    if not snapshots:
        return None
    events = {}
    for t, snap in snapshots:
        for name, ix in snap.items():
            e = events.setdefault(name, {"definition": ix["definition"], "seen_s": t - t0,
                                         "valid_s": None, "last_seen_s": None})
            if ix["valid"] and e["valid_s"] is None:
                e["valid_s"] = t - t0
            e["last_seen_s"] = t - t0
    final = snapshots[-1][1]
    state = lambda snap: sorted((n, ix["valid"]) for n, ix in snap.items())
    last_change = None
    for (_, prev), (t, snap) in zip(snapshots, snapshots[1:]):
        if state(prev) != state(snap):
            last_change = t - t0
    if last_change is None and final:
        last_change = snapshots[0][0] - t0
    for name, e in events.items():
        e["in_final_set"] = name in final and final[name]["valid"]
        e["dropped_by_s"] = None if name in final else e["last_seen_s"]
    return {"events": events, "final_set": sorted(final), "time_to_final_set_s": last_change,
            "learning_s": t_end - t0, "polls": len(snapshots)}


def summarize(raw):
    meta = json.load(open(os.path.join(raw, "meta.json")))
    classes, weights, writes = meta["classes"], meta["weights"], set(meta["writes"])
    wsum = sum(weights[c] for c in classes)
    template = {r[0] for r in read_tsv(os.path.join(raw, "indexes-tpl.tsv"))}
    reps = range(1, meta["reps"] + 1)
    configs = {}
    for cfg in CONFIGS:
        per_rep = [class_latencies(raw, f"{cfg}-r{r}", classes) for r in reps]
        cls = {}
        for c in classes:
            means = [p[c]["mean_ms"] for p in per_rep]
            cls[c] = {"mean_ms": median(means), "spread_ms": spread(means),
                      "n": sum(p[c]["n"] for p in per_rep),
                      "failed": sum(p[c]["failed"] for p in per_rep)}
        workload = []
        for p in per_rep:
            if all(p[c]["mean_ms"] is not None for c in classes):
                workload.append(sum(weights[c] * p[c]["mean_ms"] for c in classes) / wsum)
            else:
                workload.append(None)
        write_tps = [tps(os.path.join(raw, f"writes-{cfg}-r{r}.out")) for r in reps]
        mixed_tps = [tps(os.path.join(raw, f"mixed-{cfg}-r{r}.out")) for r in reps]
        added = indexes_added(raw, cfg, template)
        configs[cfg] = {
            "classes": cls,
            "workload_ms": median(workload), "workload_ms_per_rep": workload,
            "write_tps": median(write_tps), "write_tps_per_rep": write_tps,
            "mixed_tps": median(mixed_tps), "mixed_tps_per_rep": mixed_tps,
            "indexes_added": added,
            "index_count": len(added),
            "index_mb": sum(i["bytes"] for i in added) / 2**20,
            "pgbench_failures": [pgbench_failures(os.path.join(raw, f"{k}-{cfg}-r{r}.out"))
                                 for r in reps for k in ("mixed", "writes")],
        }
    oracle = configs["oracle"]
    for cfg, c in configs.items():
        ratios = []
        for name in classes:
            a, b = c["classes"][name]["mean_ms"], oracle["classes"][name]["mean_ms"]
            ratio = a / b if a and b else None
            c["classes"][name]["x_oracle"] = ratio
            if ratio:
                ratios.append(ratio)
        c["geomean_x_oracle"] = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
        c["workload_x_oracle"] = (c["workload_ms"] / oracle["workload_ms"]
                                  if c["workload_ms"] and oracle["workload_ms"] else None)
        c["write_tps_x_oracle"] = (c["write_tps"] / oracle["write_tps"]
                                   if c["write_tps"] and oracle["write_tps"] else None)
    lineage = None
    lp = os.path.join(raw, "lineage.json")
    if os.path.exists(lp):
        try:
            lineage = json.load(open(lp))
        except ValueError:
            lineage = None
    profile_counts = {}
    if lineage is not None:
        # Genome and expression-profile records (one per tenant x field) are
        # counted, not kept: they would make the summary megabytes long.
        for e in lineage:
            if e.get("kind") in ("expression", "genome"):
                cols = ",".join(e.get("columns") or []) if e.get("kind") == "expression" else "*"
                key = f"{e.get('kind')} {e.get('table')}.{cols} {e.get('outcome')}"
                profile_counts[key] = profile_counts.get(key, 0) + 1
        lineage = [e for e in lineage if e.get("kind") not in ("expression", "genome")]
    return {"meta": meta, "configs": configs, "timeline": timeline(raw, template),
            "lineage": lineage, "lineage_profile_counts": profile_counts, "elapsed_s": _read(raw, "elapsed_s"),
            "load_after": _read(raw, "load_after"), "note": _read(raw, "note")}


def _read(raw, name):
    p = os.path.join(raw, name)
    return open(p).read().strip() if os.path.exists(p) else None


def fmt(v, spec=".2f", none="–"):
    return none if v is None else format(v, spec)


def render(s, raw):
    m, cfgs = s["meta"], s["configs"]
    out = []
    w = out.append
    w(f"# Advisor benchmark: {m['workload']} ({m['scale']}), {m['stamp']}\n")
    w(f"{m['reps']} interleaved repetitions of each configuration; mixed runs {m['duration_s']} s, "
      f"write-only runs {m['write_duration_s']} s, {m['clients']} clients, `pgbench -M {m['mode']}`; "
      f"IndexPilot fed through the proxy for {m['warmup_s']} s, then measured directly against "
      f"PostgreSQL. {m['postgres']}; hypopg {'installed' if m['hypopg'] else 'absent'}; cluster: "
      f"{', '.join(m['cluster_settings'])}. Binary `{m['bin']}` ({m['bin_version']}, sha256 "
      f"{m['bin_sha256']}…). Load average before/after: {m['load_before']} / {s['load_after']}. "
      f"Whole run: {s['elapsed_s']} s. Medians over repetitions, [min–max] across them.\n")
    if s.get("note"):
        w(f"Note: {s['note']}\n")
    w("## Summary\n")
    w("| config | workload ms/tx | × oracle | per-class geomean × oracle | indexes added | index MB | "
      "write-only tps | × oracle | mixed tps |")
    w("|---|---|---|---|---|---|---|---|---|")
    for cfg in CONFIGS:
        c = cfgs[cfg]
        w(f"| {cfg} | {fmt(c['workload_ms'], '.3f')} [{_sp(c['workload_ms_per_rep'], '.3f')}] | "
          f"{fmt(c['workload_x_oracle'])} | {fmt(c['geomean_x_oracle'])} | {c['index_count']} | "
          f"{c['index_mb']:.1f} | {fmt(c['write_tps'], '.0f')} [{_sp(c['write_tps_per_rep'], '.0f')}] | "
          f"{fmt(c['write_tps_x_oracle'])} | {fmt(c['mixed_tps'], '.0f')} |")
    tl = s["timeline"]
    if tl:
        w(f"\nTime from first traffic to IndexPilot's final index set: "
          f"**{fmt(tl['time_to_final_set_s'], '.0f')} s** (of {tl['learning_s']:.0f} s of learning; "
          f"pg_index polled every ~5 s, {tl['polls']} polls).\n")
    w("## Per class (mean latency ms; × oracle)\n")
    w("| class | weight | kind | none | oracle | product | none × | product × |")
    w("|---|---|---|---|---|---|---|---|")
    for name in m["classes"]:
        row = [cfgs[c]["classes"][name] for c in CONFIGS]
        kind = "write" if name in m["writes"] else "read"
        w(f"| {name} | {m['weights'][name]} | {kind} | "
          + " | ".join(f"{fmt(r['mean_ms'], '.3f')} [{_sp(r['spread_ms'], '.3f')}]" for r in row)
          + f" | {fmt(row[0]['x_oracle'])} | {fmt(row[2]['x_oracle'])} |")
    fails = {c: sum(r["failed"] for r in cfgs[c]["classes"].values()) for c in CONFIGS}
    aborted = {c: sum((f or {}).get("clients_aborted", 0) for f in cfgs[c]["pgbench_failures"])
               for c in CONFIGS}
    w(f"\nFailed transactions in the mixed runs (after pgbench's retries of deadlocks/serialization "
      f"failures): {fails}; aborted pgbench clients: {aborted}.\n")
    for cfg in ("oracle", "product"):
        w(f"## Indexes of `{cfg}` (beyond the launch indexes)\n")
        w("| index | MB | scans in the measured runs | definition |")
        w("|---|---|---|---|")
        for ix in cfgs[cfg]["indexes_added"]:
            w(f"| {ix['name']} | {ix['bytes'] / 2**20:.1f} | {ix['idx_scan_after_runs']} | "
              f"`{ix['definition']}` |")
        w("")
    if tl:
        w("## IndexPilot's index timeline (s after first traffic)\n")
        w("| index | first seen (building) | valid | dropped by | in final set | definition |")
        w("|---|---|---|---|---|---|")
        for name, e in sorted(tl["events"].items(), key=lambda kv: kv[1]["seen_s"]):
            w(f"| {name} | {e['seen_s']:.0f} | {fmt(e['valid_s'], '.0f')} | "
              f"{fmt(e['dropped_by_s'], '.0f')} | {'yes' if e['in_final_set'] else 'no'} | "
              f"`{e['definition']}` |")
        w("")
    if s["lineage"] is not None:
        w("## Every decision (`indexpilot lineage`, oldest first)\n")
        w("| at | # | kind | outcome | table | columns | tenant | index | reason |")
        w("|---|---|---|---|---|---|---|---|---|")
        for e in sorted(s["lineage"], key=lambda e: e.get("id", 0)):
            reason = (e.get("reason") or "").replace("|", "\\|")
            w(f"| {e.get('at')} | {e.get('id')} | {e.get('kind')} | {e.get('outcome')} | {e.get('table')} | "
              f"{', '.join(e.get('columns') or [])} | {e.get('tenant') or ''} | {e.get('index_name') or ''} | "
              f"{reason} |")
        counts = s["lineage_profile_counts"]
        if counts:
            w("\nGenome records (schema discovered) and expression-profile records (a tenant "
              "observed using a field), counted per table/field: "
              + "; ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ".")
        w("")
    adv = os.path.join(raw, "advise.txt")
    if os.path.exists(adv):
        w("## `indexpilot advise` at the end of learning\n")
        w("```")
        w(open(adv).read().rstrip())
        w("```\n")
    w(f"Raw logs: `{raw}` (not kept in the repository).\n")
    return "\n".join(out)


def _sp(values, spec):
    sp = spread(values)
    return "–" if sp is None else f"{format(sp[0], spec)}–{format(sp[1], spec)}"


def main():
    raw, results = sys.argv[1], sys.argv[2]
    os.makedirs(results, exist_ok=True)
    s = summarize(raw)
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump(s, f, indent=1, default=str)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(render(s, raw))
    print(os.path.join(results, "summary.md"))


if __name__ == "__main__":
    main()
