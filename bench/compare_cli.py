#!/usr/bin/env python3
"""Two builds of the streamingllm CLI side by side: `run -n 256 --temp 0 -t 1` (wall time and its
generation tok/s) and a full-cache `bench --tokens 20000 -t 1` (tok/s), interleaved (the order
alternates each round), medians over the rounds. The machine is shared and noisy: only ratios
measured in one run mean anything.

    python3 bench/compare_cli.py BEFORE_CLI AFTER_CLI [--rounds 11] [--model M]
"""
import argparse
import os
import re
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--model", default=os.path.join(
        ROOT, "..", "shared", "models", "stories260K", "stories260K.gguf"))
    a = ap.parse_args()
    clis = {"before": a.before, "after": a.after}
    res = {(k, c): [] for k in clis for c in ("run_wall_s", "run_tok_s", "bench_tok_s")}
    for i in range(a.rounds):
        order = list(clis.items()) if i % 2 == 0 else list(reversed(clis.items()))
        for name, cli in order:
            start = time.monotonic()
            r = subprocess.run([cli, "run", "-m", a.model, "-n", "256", "--temp", "0", "-t", "1"],
                               capture_output=True, text=True, check=True)
            res[(name, "run_wall_s")].append(time.monotonic() - start)
            res[(name, "run_tok_s")].append(float(re.search(r"\(([\d.]+) tok/s\)", r.stderr)[1]))
            r = subprocess.run([cli, "bench", "-m", a.model, "--tokens", "20000", "-t", "1"],
                               capture_output=True, text=True, check=True)
            res[(name, "bench_tok_s")].append(float(re.search(r"([\d.]+) tok/s", r.stdout)[1]))
    for c in ("run_wall_s", "run_tok_s", "bench_tok_s"):
        b = statistics.median(res[("before", c)])
        f = statistics.median(res[("after", c)])
        print(f"{c:12s} before {b:10.3f}  after {f:10.3f}  after/before {f / b:.3f}")


if __name__ == "__main__":
    main()
