#!/usr/bin/env python3
"""streamingllm against llama.cpp on the very same GGUF, same threads, interleaved: prefill tok/s
(a P-token prompt in one batch) and decode tok/s (D tokens after an 8-token prompt), medians over
the rounds and our/their ratios. The machine is shared and noisy: the runs alternate order every
round, and only ratios measured in one run mean anything.

    python3 bench/peer_speed.py MODEL.gguf [MODEL.gguf ...] [--threads 1,2] [--rounds 5]
                                [--prefill 512] [--decode 64] [--pin CPUS] [--json OUT]

--pin CPUS: run both engines under `taskset -c CPUS` (e.g. `--pin 0` with `--threads 1`): on a
virtual machine the cores need not be equal (on ours, CPU 1 decoded q8_0 17% slower than CPU 0,
pinned, side by side), and an unpinned one-thread run lands on either.

Ours: `streamingllm bench --ids-file F --rounds 1 --caches ''` (its speed report; model loading is
not timed). Theirs: bench/peer/speed.mjs (node-llama-cpp 3.21.1 = llama.cpp's prebuilt CPU
library, peer/node_modules; `cd peer && npm ci --ignore-scripts`). Both read the same token ids.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ours(binary, model, ids, threads, prefill, decode, prefix=()):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([*prefix, binary, "bench", "-m", model, "-t", str(threads), "--ids-file", ids,
                        "--rounds", "1", "--prefill", str(prefill), "--decode", str(decode),
                        "--caches", "", "--full-cache", "0", "--profile", "0",
                        "--bandwidth-mib", "16", "--json", out.name],
                       check=True, capture_output=True)
        j = json.load(open(out.name))
    return j["prefill"]["tok_s"], j["decode_short"]["tok_s"]


def theirs(model, ids, threads, prefill, decode, prefix=()):
    r = subprocess.run([*prefix, "node", os.path.join(ROOT, "bench", "peer", "speed.mjs"), model, ids,
                        "--threads", str(threads), "--prefill", str(prefill), "--decode",
                        str(decode)], check=True, capture_output=True, text=True)
    j = json.loads(r.stdout.strip().splitlines()[-1])
    return prefill / j["prefill_s"], decode / j["decode_s"]


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def write_ids(vocab, n):
    """A file of n pseudo-random token ids in [3, vocab), the same for every run (seed 1)."""
    rng = random.Random(1)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(" ".join(str(rng.randrange(3, vocab)) for _ in range(n)))
        return f.name


def compare(binary, model, ids, threads, rounds, prefill, decode, peer=True, prefix=()):
    """One model at one thread count, ours and theirs alternating in order every round. Returns
    the samples, medians (tok/s: prefill, decode) and our/their ratios (None without the peer)."""
    who_runs = ["ours", "theirs"] if peer else ["ours"]
    samples = {w: [] for w in who_runs}
    loads = []
    for r in range(rounds):
        for who in (who_runs if r % 2 == 0 else who_runs[::-1]):
            if who == "ours":
                samples[who].append(ours(binary, model, ids, threads, prefill, decode, prefix))
            else:
                samples[who].append(theirs(model, ids, threads, prefill, decode, prefix))
        loads.append(load_average())
    med = {w: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v))
           for w, v in samples.items()}
    return dict(model=model, threads=threads, rounds=rounds, samples=samples,
                prefill_ratio=med["ours"][0] / med["theirs"][0] if peer else None,
                decode_ratio=med["ours"][1] / med["theirs"][1] if peer else None,
                median=med, load_average=statistics.median(loads))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "release", "apps", "streamingllm",
                                                  "streamingllm"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=32000, help="ids are drawn below this")
    ap.add_argument("--json", help="write every sample here")
    ap.add_argument("--pin", help="run both engines under `taskset -c PIN`")
    a = ap.parse_args()
    prefix = ("taskset", "-c", a.pin) if a.pin else ()

    ids = write_ids(a.vocab, max(a.prefill, 8) + 8)
    results = []
    print(f"{'model':<40} {'thr':>3} {'prefill ours':>13} {'theirs':>9} {'ratio':>6} "
          f"{'decode ours':>12} {'theirs':>9} {'ratio':>6}  load")
    for model in a.models:
        for threads in [int(t) for t in a.threads.split(",")]:
            row = compare(a.bin, model, ids, threads, a.rounds, a.prefill, a.decode, prefix=prefix)
            med = row["median"]
            results.append(row)
            print(f"{os.path.basename(model):<40} {threads:>3} {med['ours'][0]:>13.1f} "
                  f"{med['theirs'][0]:>9.1f} {row['prefill_ratio']:>5.2f}x {med['ours'][1]:>12.2f} "
                  f"{med['theirs'][1]:>9.2f} {row['decode_ratio']:>5.2f}x  {row['load_average']:.1f}",
                  flush=True)
    os.unlink(ids)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
