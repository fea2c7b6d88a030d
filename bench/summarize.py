#!/usr/bin/env python3
"""Summaries for bench/overhead.sh (standard library only).

  summarize.py latency LOG...   mean and p99 latency (ms) from pgbench -l logs
  summarize.py latency95 LOG... mean and p95 latency (ms)
  summarize.py report RAW.csv   Markdown table: medians over rounds per
                                (mode, clients, target), TPS vs direct
"""
import csv
import math
import statistics
import sys
from collections import defaultdict


def latency(paths, quantile=0.99):
    """Prints `mean_ms pXX_ms transactions` over every per-transaction log.

    The third column of a pgbench -l line is the latency in microseconds;
    the quantile uses the nearest-rank definition.
    """
    lats = []
    for path in paths:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    lats.append(int(fields[2]))
    if not lats:
        sys.exit("summarize.py: no transactions in " + " ".join(paths))
    lats.sort()
    q = lats[max(0, math.ceil(quantile * len(lats)) - 1)]
    print(f"{sum(lats) / len(lats) / 1000:.3f} {q / 1000:.3f} {len(lats)}")


def report(raw_csv):
    """Prints one Markdown row per (mode, clients, target).

    The ratio to direct is the median of per-round ratios, so each ratio only
    compares runs taken back to back under the same machine load.
    """
    runs = defaultdict(dict)  # (mode, clients, round) -> target -> row
    order = {"mode": [], "clients": [], "target": []}
    with open(raw_csv) as f:
        for row in csv.DictReader(f):
            runs[(row["mode"], int(row["clients"]), row["round"])][row["target"]] = row
            for key in order:
                value = int(row[key]) if key == "clients" else row[key]
                if value not in order[key]:
                    order[key].append(value)

    print("| mode | clients | target | TPS | TPS vs direct | mean latency (ms) | p99 latency (ms) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for mode in order["mode"]:
        for clients in sorted(order["clients"]):
            rounds = [t for (m, c, _), t in runs.items() if m == mode and c == clients]
            for target in order["target"]:
                print_row(mode, clients, target, rounds)


def print_row(mode, clients, target, rounds):
    rows = [r[target] for r in rounds if target in r]
    if not rows:
        return

    def med(key):
        return statistics.median(float(r[key]) for r in rows)

    ratios = [
        float(r[target]["tps"]) / float(r["direct"]["tps"])
        for r in rounds
        if target in r and "direct" in r and float(r["direct"]["tps"]) > 0
    ]
    ratio = f"{statistics.median(ratios):.3f}" if ratios and target != "direct" else "—"
    print(
        f"| {mode} | {clients} | {target} | {med('tps'):.0f} | {ratio} "
        f"| {med('mean_ms'):.3f} | {med('p99_ms'):.3f} |"
    )


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "latency":
        latency(sys.argv[2:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "latency95":
        latency(sys.argv[2:], 0.95)
    elif len(sys.argv) == 3 and sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
