#!/usr/bin/env python3
"""Sums scripts/fuzz.sh's run log (docs/reliability/fuzz-log.tsv, committed) per target into the table of
docs/RELIABILITY.md: seconds fuzzed in all, executions, the most coverage (edges) and features a
run reached, the corpus the last run left. Only runs that ended without a finding are logged, so every second counted is a
second without a crash, leak, sanitizer report, hang or memory blow-up.

Usage: scripts/fuzz_report.py [--stats docs/reliability/fuzz-log.tsv] [--update docs/RELIABILITY.md]
(without --update the table goes to stdout; with it, the table between the file's
<!-- fuzz-table --> and <!-- /fuzz-table --> lines is replaced).
"""
import argparse
import csv
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- fuzz-table -->", "<!-- /fuzz-table -->"


def table(stats_path, targets_path):
    per = {}
    with open(stats_path, newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
        for row in csv.DictReader(lines, delimiter="\t"):
            if not row["runs"]:
                continue
            t = per.setdefault(row["target"], {"n": 0, "seconds": 0, "execs": 0, "cov": 0, "ft": 0,
                                               "first": row["date"]})
            t["n"] += int(row.get("n") or 1)
            t["first"] = min(t["first"], row.get("first") or row["date"])
            t["seconds"] += int(row["seconds"])
            t["execs"] += int(row["runs"])
            t["cov"] = max(t["cov"], int(row["cov"]))
            t["ft"] = max(t["ft"], int(row["ft"]))
            t.update(last=row["date"], corpus=row["corpus"])
    order = []
    if os.path.exists(targets_path):
        order = [line.strip() for line in open(targets_path) if line.strip()]
    order += sorted(set(per) - set(order))
    lines = ["| target | runs | seconds fuzzed | executions | cov (most) | ft (most) | corpus (last) | "
             "first run – last run (UTC) |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    total_s = 0
    for name in order:
        t = per.get(name)
        if t is None:
            lines.append(f"| `{name}` | 0 | 0 | 0 | | | | |")
            continue
        total_s += t["seconds"]
        lines.append(f"| `{name}` | {t['n']} | {t['seconds']:,} | {t['execs']:,} | {t['cov']} | "
                     f"{t['ft']} | {t['corpus']} | {t['first'][:16]} – {t['last'][:16]} |")
    lines.append(f"\n{len(order)} targets, {total_s:,} s ({total_s / 3600:.1f} h) fuzzed in all "
                 f"(written by `scripts/fuzz_report.py` from `{os.path.relpath(stats_path, ROOT)}`).")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stats", default=os.path.join(ROOT, "docs/reliability/fuzz-log.tsv"))
    ap.add_argument("--targets", default=os.path.join(ROOT, "build/fuzz/fuzz/targets.txt"))
    ap.add_argument("--update")
    a = ap.parse_args()
    text = table(a.stats, a.targets)
    if not a.update:
        print(text)
        return 0
    doc = open(a.update).read()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"{a.update}: no {BEGIN} ... {END} lines to replace")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(a.update, "w") as f:
        f.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
