#!/usr/bin/env python3
"""Tokenization throughput (MB/s), streamingllm vs llama.cpp (peer/, node-llama-cpp 3.21.1), in one run.

For each vocabulary: a Gutenberg book tokenized whole, once per process, by
build/release/bench/tokenizer_tool (public API) and by peer/tokenize.mjs (llama.cpp), rounds
interleaved (the order alternates each round), medians. The vocabulary load is not timed, and
neither side has seen the text before the timed call (no warm caches). MB = 10^6 bytes of input.
Wall-clock and CPU-time (user + system of the process during the call) rates are both reported:
the machine is shared, and CPU time does not count other processes' turns. Also times a 1 MB
string with no spaces (a single 1,000,000-byte "word" of pseudo-random lowercase letters), which
must take under 2 s. Needs node and `cd peer && npm ci`.

    python3 bench/tokenizer_throughput.py [--vocab NAME]... [--book FILE] [--rounds 7]
        [--json out.json] [--markdown out.md]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
DEFAULT_VOCABS = ["gpt-2", "llama-bpe", "qwen2", "llama-spm", "phi-3"]


def time_once(side, vocab, text, a):
    """One process, one timed tokenize call: {bytes, count, wall_s, cpu_s, mb_s} or an error."""
    if side == "ours":
        cmd, cwd = [a.tool, "time", vocab, text], None
    else:
        cmd, cwd = ["node", os.path.join(a.peer_dir, "tokenize.mjs"), "--time", vocab, text], a.peer_dir
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    err = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
    return {"error": err}


def measure(vocab_path, text, rounds, a):
    samples = {"ours": [], "llama.cpp": []}
    for i in range(rounds):
        order = ["ours", "llama.cpp"] if i % 2 == 0 else ["llama.cpp", "ours"]
        for side in order:
            if samples[side] and "error" in samples[side][-1]:
                continue  # an unsupported vocabulary fails the same way every round
            samples[side].append(time_once(side, vocab_path, text, a))
    out = {}
    for side, rows in samples.items():
        ok = [r for r in rows if "error" not in r]
        if not ok:
            out[side] = {"error": rows[0]["error"] if rows else "not run"}
            continue
        nbytes = ok[0]["bytes"]
        out[side] = {
            "bytes": nbytes,
            "tokens": ok[0]["count"],
            "rounds": len(ok),
            "wall_s_median": statistics.median(r["wall_s"] for r in ok),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in ok),
            "mb_s_wall_median": statistics.median(nbytes / 1e6 / r["wall_s"] for r in ok),
            "mb_s_cpu_median": statistics.median(nbytes / 1e6 / max(r["cpu_s"], 1e-9) for r in ok),
            "wall_s": [r["wall_s"] for r in ok],
        }
    return out


def nospace_text(path, n=1_000_000):
    """n pseudo-random lowercase letters (a fixed LCG): one word, no spaces, no repeats to exploit."""
    x, out = 12345, bytearray(n)
    for i in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        out[i] = 97 + (x >> 33) % 26
    with open(path, "wb") as f:
        f.write(out)


def fmt_side(s, key):
    return "n/a" if "error" in s else f"{s[key]:.2f}"


def ratio(o, p, key):
    if "error" in o or "error" in p:
        return "n/a"
    return f"{o[key] / p[key]:.2f}x"


def slow(s):
    """The acceptance bound for the 1 MB no-space string: 2 s."""
    return " (OVER 2 s)" if "error" not in s and s["wall_s_median"] >= 2.0 else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", action="append", default=[])
    ap.add_argument("--book", default=os.path.join(SHARED, "data", "text", "gutenberg_pg1342.txt"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--nospace-rounds", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--peer-dir", default=os.path.join(ROOT, "peer"))
    ap.add_argument("--tool", default=os.path.join(ROOT, "build", "release", "bench", "tokenizer_tool"))
    a = ap.parse_args()
    if not os.path.isdir(os.path.join(a.peer_dir, "node_modules", "node-llama-cpp")):
        sys.exit(f"tokenizer_throughput.py: no node-llama-cpp in {a.peer_dir}: run `cd peer && npm ci`")
    if not os.access(a.tool, os.X_OK):
        sys.exit(f"tokenizer_throughput.py: {a.tool} missing: build the tokenizer_tool target")
    vocabs = a.vocab or DEFAULT_VOCABS
    result = {"book": os.path.basename(a.book), "rounds": a.rounds,
              "machine": platform.processor() or platform.machine(), "nproc": os.cpu_count(),
              "load_avg_start": os.getloadavg(), "vocabs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        nospace = os.path.join(tmp, "nospace_1mb.txt")
        nospace_text(nospace)
        for name in vocabs:
            path = os.path.join(SHARED, "data", "vocab", f"ggml-vocab-{name}.gguf")
            book = measure(path, a.book, a.rounds, a)
            ns = measure(path, nospace, a.nospace_rounds, a)
            result["vocabs"][name] = {"book": book, "nospace_1mb": ns}
            print(f"{name}: book ours {fmt_side(book['ours'], 'mb_s_wall_median')} MB/s, llama.cpp "
                  f"{fmt_side(book['llama.cpp'], 'mb_s_wall_median')} MB/s; 1 MB no-space ours "
                  f"{fmt_side(ns['ours'], 'wall_s_median')} s, llama.cpp "
                  f"{fmt_side(ns['llama.cpp'], 'wall_s_median')} s", file=sys.stderr, flush=True)
    result["load_avg_end"] = os.getloadavg()

    lines = [
        f"Book: {result['book']} ({os.path.getsize(a.book):,} bytes), "
        f"medians of {a.rounds} interleaved rounds (1 MB no-space string: {a.nospace_rounds}); "
        f"load average {result['load_avg_start'][0]:.1f} at the start, {result['load_avg_end'][0]:.1f} at the end.",
        "",
        "| vocabulary | tokens | ours MB/s (wall) | llama.cpp MB/s (wall) | ours / llama.cpp (wall) "
        "| ours MB/s (CPU) | llama.cpp MB/s (CPU) | ours / llama.cpp (CPU) | 1 MB no-space: ours s | llama.cpp s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in result["vocabs"].items():
        o, p = v["book"]["ours"], v["book"]["llama.cpp"]
        no, np_ = v["nospace_1mb"]["ours"], v["nospace_1mb"]["llama.cpp"]
        tokens = p.get("tokens", o.get("tokens", "n/a"))
        if "error" not in o and "error" not in p and o["tokens"] != p["tokens"]:
            tokens = f"{o['tokens']} vs {p['tokens']} (DIFFER)"
        lines.append(
            f"| {name} | {tokens} | {fmt_side(o, 'mb_s_wall_median')} | {fmt_side(p, 'mb_s_wall_median')} "
            f"| {ratio(o, p, 'mb_s_wall_median')} | {fmt_side(o, 'mb_s_cpu_median')} "
            f"| {fmt_side(p, 'mb_s_cpu_median')} | {ratio(o, p, 'mb_s_cpu_median')} "
            f"| {fmt_side(no, 'wall_s_median')}{slow(no)} | {fmt_side(np_, 'wall_s_median')} |")
    for name, v in result["vocabs"].items():
        if "error" in v["book"]["ours"]:
            lines.append(f"\n{name}, ours: {v['book']['ours']['error']}")
    table = "\n".join(lines)
    print(table)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
