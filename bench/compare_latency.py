#!/usr/bin/env python3
"""Two builds of the streamingllm CLI side by side on issue 12's acceptance 5: the streaming
decode latency with a full cache of each size (`bench --caches 256,4096`, no recompute), and the
ratio of the largest to the smallest, interleaved (the order alternates each round), medians over
the rounds. The machine is shared and noisy: only ratios measured in one run mean anything.

    python3 bench/compare_latency.py BEFORE_CLI AFTER_CLI --model M.gguf [--kv-type f32,f16]
        [--threads 2] [--rounds 3] [--caches 256,4096] [--tokens 16]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile


def latency(cli, a, kv_type):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        subprocess.run([cli, "bench", "-m", a.model, "-t", str(a.threads), "--rounds", "1",
                        "--prefill", "0", "--decode", "0", "--caches", a.caches,
                        "--streaming-tokens", str(a.tokens), "--recompute-tokens", "0",
                        "--full-cache", "0", "--profile", "0", "--bandwidth-mib", "16",
                        "--kv-type", kv_type, "--json", out],
                       capture_output=True, text=True, check=True)
        with open(out) as f:
            rows = json.load(f)["latency_by_cache"]
    return {r["cache"]: r["streaming_ms"] for r in rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--model", required=True)
    ap.add_argument("--kv-type", default="f32,f16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--caches", default="256,4096")
    ap.add_argument("--tokens", type=int, default=16)
    a = ap.parse_args()
    caches = [int(c) for c in a.caches.split(",")]
    clis = [("before", a.before), ("after", a.after)]
    print(f"{os.path.basename(a.model)}, {a.threads} threads, {a.rounds} rounds, "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for kv_type in a.kv_type.split(","):
        ms = {(name, c): [] for name, _ in clis for c in caches}
        for i in range(a.rounds):
            for name, cli in (clis if i % 2 == 0 else list(reversed(clis))):
                for c, v in latency(cli, a, kv_type).items():
                    ms[(name, c)].append(v)
        for name, _ in clis:
            med = {c: statistics.median(ms[(name, c)]) for c in caches}
            cells = "  ".join(f"{c}: {med[c]:.3f} ms" for c in caches)
            print(f"{kv_type} {name:6s}  {cells}  {caches[-1]}/{caches[0]}: "
                  f"{med[caches[-1]] / med[caches[0]]:.3f}")
        for c in caches:
            b = statistics.median(ms[("before", c)])
            f = statistics.median(ms[("after", c)])
            print(f"{kv_type} cache {c}: after/before latency {f / b:.3f}")


if __name__ == "__main__":
    main()
