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

--http: instead, `streamingllm serve` on a free port with N concurrent clients, each on its own
session, --turns T chat turns of --max-tokens tokens each; every request must answer 200.
Reports the aggregate completion tok/s over the wall time (prefill of the turns included).
"""
import socket
import threading
import time
import urllib.request
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(port, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.status, json.loads(r.read())


def over_http(cli, model, n, threads, turns, max_tokens):
    """Aggregate completion tok/s of n clients x turns through `streamingllm serve`."""
    port = free_port()
    server = subprocess.Popen([cli, "serve", "-m", model, "-t", str(threads), "--port", str(port),
                               "--max-sessions", str(max(n, 1)), "--kv-type", "f16", "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if http_json(port, "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        tokens, failures = [0] * n, []

        def client(i):
            session = None
            for t in range(turns):
                body = {"messages": [{"role": "user", "content": f"Tell me story {i}, part {t}."}],
                        "max_tokens": max_tokens, "seed": i, "temperature": 0.8}
                if session:
                    body["session_id"] = session
                try:
                    status, r = http_json(port, "/v1/chat/completions", body)
                except Exception as e:  # noqa: BLE001 (any failure counts)
                    failures.append(f"client {i} turn {t}: {e}")
                    return
                if status != 200:
                    failures.append(f"client {i} turn {t}: HTTP {status}")
                    return
                session = r["session_id"]
                tokens[i] += r["usage"]["completion_tokens"]

        start = time.monotonic()
        clients = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        seconds = time.monotonic() - start
        if failures:
            raise RuntimeError(f"{len(failures)} failed requests: {failures[:3]}")
        _, _ = http_json(port, "/health")
        return sum(tokens) / seconds, sum(tokens), n * turns
    finally:
        server.terminate()
        server.wait()


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
    ap.add_argument("--http", action="store_true", help="through `streamingllm serve`")
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "release", "apps", "streamingllm",
                                                  "streamingllm"))
    args = ap.parse_args()
    if args.http:
        rows = []
        for model in args.models:
            for t in [int(x) for x in args.threads.split(",")]:
                for n in [int(x) for x in args.counts.split(",")]:
                    load = os.getloadavg()[0]
                    tok_s, n_tokens, n_requests = over_http(args.cli, model, n, t, args.turns,
                                                            args.max_tokens)
                    rows.append({"model": os.path.basename(model), "threads": t, "clients": n,
                                 "requests_ok": n_requests, "completion_tokens": n_tokens,
                                 "tok_s": tok_s, "load_average": load})
                    print(f"{os.path.basename(model):28s} t={t} clients={n:3d} x {args.turns} "
                          f"turns: {n_requests} requests 200, {n_tokens} tokens, {tok_s:9.1f} tok/s"
                          f"  load {load:.2f}", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return 0
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
