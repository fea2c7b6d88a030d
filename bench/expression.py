#!/usr/bin/env python3
"""Report for bench/expression.sh: medians per layout over rounds.

  expression.py RAW.csv   (columns: layout, round, bytes, p95_ms, insert_tps)
"""
import csv
import statistics
import sys


def main(path):
    rows = list(csv.DictReader(open(path)))
    layouts = []
    for r in rows:
        if r["layout"] not in layouts:
            layouts.append(r["layout"])
    med = {
        name: {
            key: statistics.median(float(r[key]) for r in rows if r["layout"] == name)
            for key in ("bytes", "p95_ms", "insert_tps")
        }
        for name in layouts
    }
    names = {
        "partial": "per-tenant partial indexes (IndexPilot's choice)",
        "composite": "one shared (tenant_id, custom_1) composite",
        "none": "no index on custom_1 (reference)",
    }
    print("| layout | index size | p95 of custom_1 lookups (ms) | INSERT tps (all tenants) | INSERT tps vs no index |")
    print("|---|---:|---:|---:|---:|")
    base = med.get("none", {}).get("insert_tps")
    for name in layouts:
        m = med[name]
        ratio = f"{m['insert_tps'] / base:.3f}" if base else "-"
        print(
            f"| {names.get(name, name)} | {m['bytes'] / 1024:.0f} KiB | {m['p95_ms']:.3f} | "
            f"{m['insert_tps']:.0f} | {ratio} |"
        )
    by_round = {}
    for r in rows:
        by_round.setdefault(r["round"], {})[r["layout"]] = float(r["insert_tps"])
    ratios = [
        v["partial"] / v["composite"] for v in by_round.values() if "partial" in v and "composite" in v
    ]
    if ratios:
        print()
        print(
            "INSERT tps, partial / composite, per round (back to back): "
            + ", ".join(f"{x:.3f}" for x in ratios)
            + f"; median {statistics.median(ratios):.3f}"
        )


if __name__ == "__main__":
    main(sys.argv[1])
