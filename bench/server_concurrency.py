#!/usr/bin/env python3
"""Aggregate decode tok/s with 1, 4, 8, 32 active sessions (issue 13, acceptance 3): ours (the
library's Batch, bench/batch_bench) next to llama.cpp decoding the same number of sequences in
one context (bench/peer/batch_speed.mjs, node-llama-cpp 3.21.1), on the same GGUF and the same
prompt ids, greedy, f16 K/V on both sides. Ours and theirs alternate (the order flips every
round); medians over the rounds and our/their ratios; the load average is printed with every
figure because the machine is shared.

    python3 bench/server_concurrency.py MODEL.gguf [MODEL.gguf ...] [--counts 1,4,8,32]
        [--threads 1,2] [--rounds 3] [--decode 64] [--vocab 500] [--json OUT]

--decode D: tokens each session generates in the timed part (after its prompt of 8 ids).
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


def write_ids(vocab, n):
    rng = random.Random(1)
    f = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    f.write(" ".join(str(rng.randrange(3, vocab)) for _ in range(n)))
    f.close()
    return f.name


def ours(binary, model, ids, n, threads, decode):
    r = subprocess.run([binary, model, ids, "--streams", str(n), "--threads", str(threads),
                        "--decode", str(decode), "--kv-type", "f16"],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["tok_s"]


def theirs(model, ids, n, threads, decode):
    r = subprocess.run(["node", os.path.join(ROOT, "bench", "peer", "batch_speed.mjs"), model, ids,
                        "--sequences", str(n), "--threads", str(threads), "--decode", str(decode)],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["tok_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--counts", default="1,4,8,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "release", "bench", "batch_bench"))
    ap.add_argument("--vocab", type=int, default=500,
                    help="prompt ids are drawn below this (stories260K has 512 tokens)")
    ap.add_argument("--json")
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    threads = [int(x) for x in args.threads.split(",")]
    rows = []
    for model in args.models:
        ids = write_ids(args.vocab, 8 * max(counts))
        for t in threads:
            for n in counts:
                a, b, loads = [], [], []
                for r in range(args.rounds):
                    loads.append(os.getloadavg()[0])
                    if r % 2 == 0:
                        a.append(ours(args.binary, model, ids, n, t, args.decode))
                        b.append(theirs(model, ids, n, t, args.decode))
                    else:
                        b.append(theirs(model, ids, n, t, args.decode))
                        a.append(ours(args.binary, model, ids, n, t, args.decode))
                row = {"model": os.path.basename(model), "threads": t, "sessions": n,
                       "ours_tok_s": statistics.median(a), "llama_cpp_tok_s": statistics.median(b),
                       "ours_runs": a, "llama_cpp_runs": b, "load_average": loads}
                row["ratio"] = row["ours_tok_s"] / row["llama_cpp_tok_s"]
                rows.append(row)
                print(f"{row['model']:28s} t={t} sessions={n:3d}  ours {row['ours_tok_s']:10.1f}"
                      f"  llama.cpp {row['llama_cpp_tok_s']:10.1f}  ratio {row['ratio']:6.2f}"
                      f"  load {statistics.median(loads):.2f}", flush=True)
        os.unlink(ids)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
