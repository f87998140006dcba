#!/usr/bin/env python3
"""Soak benchmark: one endless streaming session (`streamingllm bench --tokens N`: 4 sinks + 252
window by default, sampled tokens fed back, EOS fed like any token) for N tokens, checking that
memory and per-token latency stay flat.

Memory: the script reads the process's /proc/PID/status (VmRSS now, VmHWM its peak) each time
bench prints a progress line (--report-every); the table shows the first reading (start), the one
nearest N/2 (middle) and the last (end). Latency: bench's own per-token wall times over 1024
tokens right after the cache is full (start) and over the last 1024 tokens (end): p50 and p99.

Checks (exit 1 when one fails): VmRSS and VmHWM at the end at most --rss-tolerance-kib above the
start, and p50 at the end at most --p50-tolerance times the start. p99 is reported, not checked:
on a shared machine it measures the other processes.

    python3 scripts/soak_stream.py                 # 10 million tokens (full size)
    python3 scripts/soak_stream.py --quick         # 200,000 tokens
    python3 scripts/soak_stream.py --tokens 20000  # any size (>= 4096)

Writes OUT/soak_stream.json and OUT/soak_stream.md (a markdown table); OUT is build/soak.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRESS = re.compile(r"^\s*(\d+) tokens \|")


def proc_status(pid):
    """VmRSS and VmHWM of a live process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def mib(n):
    return n / (1024 * 1024)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "build/release/apps/streamingllm/streamingllm"))
    p.add_argument("--model",
                   default=os.path.join(ROOT, "../shared/models/stories260K/stories260K.gguf"))
    p.add_argument("--tokens", type=int, default=10_000_000)
    p.add_argument("--quick", action="store_true", help="200,000 tokens")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--window", type=int, default=252,
                   help="tokens after the 4 sinks (252: a 256-token cache, so that 10 million "
                        "tokens take minutes, not an hour, on a loaded 2-core machine)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--readings", type=int, default=200, help="memory readings over the run")
    p.add_argument("--rss-tolerance-kib", type=int, default=1024)
    p.add_argument("--p50-tolerance", type=float, default=1.5)
    p.add_argument("--out", default=os.path.join(ROOT, "build/soak"))
    a = p.parse_args()
    n = 200_000 if a.quick else a.tokens
    if n < 4096:
        sys.exit("--tokens: at least 4096 (a latency window after the cache is full, and a last one)")
    # Readings every `every` tokens, at least 2048 apart (the first one once the cache is full).
    every = max(2048, n // a.readings)
    os.makedirs(a.out, exist_ok=True)
    bench_json = os.path.join(a.out, "soak_stream_bench.json")
    cmd = [a.bin, "bench", "-m", a.model, "--tokens", str(n), "-t", str(a.threads),
           "--sinks", "4", "--window", str(a.window),
           "--seed", str(a.seed), "--report-every", str(every), "--json", bench_json]
    print("soak_stream:", " ".join(cmd), file=sys.stderr, flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    readings = []
    stderr_lines = []
    for line in proc.stderr:
        stderr_lines.append(line)
        m = PROGRESS.match(line)
        if m:
            try:
                st = proc_status(proc.pid)
            except OSError:
                continue  # exited between the line and the read
            readings.append({"tokens": int(m.group(1)), "seconds": time.monotonic() - start,
                             "rss_bytes": st["VmRSS"], "hwm_bytes": st["VmHWM"]})
            if len(readings) % 20 == 0:
                r = readings[-1]
                print(f"soak_stream: {r['tokens']:>10} tokens  {r['seconds']:8.1f} s  "
                      f"RSS {mib(r['rss_bytes']):.2f} MiB  peak {mib(r['hwm_bytes']):.2f} MiB",
                      file=sys.stderr, flush=True)
    stdout = proc.stdout.read()
    rc = proc.wait()
    seconds = time.monotonic() - start
    if rc != 0:
        sys.stderr.write("".join(stderr_lines) + stdout)
        sys.exit(f"soak_stream: bench exited with {rc}")
    bench = json.load(open(bench_json))
    if len(readings) < 2:
        sys.exit("soak_stream: fewer than two memory readings")

    first, last = readings[0], readings[-1]
    middle = min(readings, key=lambda r: abs(r["tokens"] - n // 2))
    w0, w1 = bench["latency_windows"][0], bench["latency_windows"][-1]
    tol = a.rss_tolerance_kib * 1024
    checks = [
        (f"VmRSS end - start <= {a.rss_tolerance_kib} KiB",
         last["rss_bytes"] - first["rss_bytes"] <= tol),
        (f"VmHWM end - start <= {a.rss_tolerance_kib} KiB",
         last["hwm_bytes"] - first["hwm_bytes"] <= tol),
        (f"p50 end / start <= {a.p50_tolerance}",
         w1["wall_median_us"] <= a.p50_tolerance * w0["wall_median_us"]),
    ]
    result = {
        "tokens": n, "threads": a.threads, "seed": a.seed, "model": a.model,
        "cache": f"{bench['n_sinks']} sinks + {bench['window']} window",
        "seconds": seconds, "tokens_per_second": bench["tokens_per_second"],
        "memory": {"start": first, "middle": middle, "end": last,
                   "max_rss_bytes": max(r["rss_bytes"] for r in readings),
                   "n_readings": len(readings)},
        "latency": {k: {"tokens": f"{w['begin']}..{w['end']}", "p50_us": w["wall_median_us"],
                        "p99_us": w["wall_p99_us"], "mean_us": w["wall_mean_us"],
                        "cpu_mean_us": w["cpu_mean_us"]} for k, w in (("start", w0), ("end", w1))},
        "checks": [{"check": c, "ok": ok} for c, ok in checks],
        "ok": all(ok for _, ok in checks),
    }
    with open(os.path.join(a.out, "soak_stream.json"), "w") as f:
        json.dump(result, f, indent=2)

    lat = result["latency"]
    md = [f"Streaming soak: {n:,} tokens through one stream of stories260K ({result['cache']}, "
          f"f32, {a.threads} thread, seed {a.seed}) in {seconds:.0f} s "
          f"({bench['tokens_per_second']:.0f} tok/s).", "",
          "| | tokens | VmRSS (MiB) | VmHWM (MiB) | p50 (us) | p99 (us) | CPU mean (us) |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for label, r, l in (("start", first, lat["start"]), ("middle", middle, None),
                        ("end", last, lat["end"])):
        cells = [f"{r['tokens']:,}", f"{mib(r['rss_bytes']):.2f}", f"{mib(r['hwm_bytes']):.2f}"]
        cells += ([f"{l['p50_us']:.1f}", f"{l['p99_us']:.1f}", f"{l['cpu_mean_us']:.1f}"]
                  if l else ["", "", ""])
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    md += ["", f"Latency over tokens {lat['start']['tokens']} (start) and {lat['end']['tokens']} "
           f"(end); memory read from /proc at {len(readings)} points, largest VmRSS "
           f"{mib(result['memory']['max_rss_bytes']):.2f} MiB.", ""]
    md += ["Every latency window of bench (1024 tokens each): " + "; ".join(
        f"{w['label']}: p50 {w['wall_median_us']:.1f} us, p99 {w['wall_p99_us']:.1f} us, "
        f"CPU {w['cpu_mean_us']:.1f} us" for w in bench["latency_windows"]) + ".", ""]
    md += [f"- {'PASS' if ok else 'FAIL'}: {c}" for c, ok in checks]
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out, "soak_stream.md"), "w") as f:
        f.write(text)
    print(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
