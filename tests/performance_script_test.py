#!/usr/bin/env python3
"""scripts/performance.py --quick --no-peer end to end: it must write every section of the
document with real figures from the engine, without llama.cpp, into a temporary directory.

    python3 tests/performance_script_test.py STREAMINGLLM_BINARY SHARED_DIR
"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    binary, shared = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        out, raw = os.path.join(tmp, "PERFORMANCE.md"), os.path.join(tmp, "raw.json")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "performance.py"),
                            "--quick", "--no-peer", "--bin", binary, "--shared", shared,
                            "--out", out, "--json", raw], capture_output=True, text=True)
        assert r.returncode == 0, f"performance.py failed ({r.returncode}):\n{r.stderr}"
        doc = open(out).read()
        data = json.load(open(raw))
        # (d) gnuplot's PNGs beside the document (CI installs gnuplot-nox: install-deps.sh).
        pngs = {}
        for name in ("latency_quick.png", "decode_profile_quick.png"):
            path = os.path.join(tmp, "figures", name)
            pngs[name] = os.path.exists(path) and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    for heading in ["## Machine", "## (a) ", "## (b) ", "## (c) ", "## (d) ", "## Commands"]:
        check(heading in doc, f"missing section {heading!r}")
    check("llama.cpp columns skipped (--no-peer)." in doc, "the skipped peer is not stated")
    check(re.search(r"^- Highway target the kernels dispatch to: [A-Z0-9_]+", doc, re.M),
          "no Highway target")
    check(re.search(r"^- Load average \(1, 5, 15 min\) before: [\d.]+ [\d.]+ [\d.]+; after: ",
                    doc, re.M), "no load average")
    check(re.search(r"in \d+\.\d minutes", doc), "the run's duration is not stated")
    # (a) ours only: positive tok/s, dashes where llama.cpp would be.
    for t in (1, 2):
        m = re.search(rf"^\| stories260K \(F32\) \| {t} \| ([\d.]+) \| – \| – \| ([\d.]+) \| – \| – \|",
                      doc, re.M)
        check(m and float(m.group(1)) > 0 and float(m.group(2)) > 0, f"(a) row for {t} thread(s)")
    check(len(data["peer"]) == 2 and all(r["decode_ratio"] is None for r in data["peer"]),
          "(a) raw rows")
    # (b) the speed report per thread count, with the bandwidth probe.
    check([j["threads"] for j in data["speed"]] == [1, 2], "(b) threads")
    check(all(j["bandwidth_gbs"]["best"] > 0 and j["decode_short"]["tok_s"] > 0
              for j in data["speed"]), "(b) bandwidth / decode")
    # (b) the profile of a decoded token, a row per thread count.
    for t in (1, 2):
        m = re.search(rf"^\| stories260K \(F32\) \| {t} \| ([\d.]+) \| \d+% · [\d.]+ GB/s \| "
                      r"\d+% \| \d+% · [\d.]+ GB/s \| \d+% · [\d.]+ GB/s \| \d+% · [\d.]+ GB/s \| "
                      r"\d+% \|$", doc, re.M)
        check(m and float(m.group(1)) > 0, f"(b) profile row for {t} thread(s)")
    check(all(len(j["decode_profile"]["phases"]) == 8 for j in data["speed"]), "(b) raw profile")
    # (c) the latency table: recompute re-reads the whole 256-token window per token.
    rows = data["latency"]["latency_by_cache"]
    check([r["cache"] for r in rows] == [64, 128, 256], "(c) caches")
    check(rows[-1]["recompute_ms"] > rows[-1]["streaming_ms"] > 0, "(c) recompute vs streaming")
    check([r["cache"] for r in data["latency"]["f16"]["latency_by_cache"]] == [64, 256],
          "(c) f16 cache ends")
    check(re.search(r"With an f16 cache: [\d.]+ ms at 64, [\d.]+ ms at 256, ratio [\d.]+", doc),
          "(c) f16 flatness line")
    # (c) where a token's time goes with the 256-token cache full, f32 and f16 KV.
    for kv in ("f32", "f16"):
        check(re.search(rf"^\| stories260K \(F32\), {kv} KV, 256-token cache \| 2 \| ([\d.]+) \| "
                        r"\d+% · [\d.]+ GB/s \| \d+% \|", doc, re.M), f"(c) {kv} full-cache profile")
    check(data["latency"]["decode_profile"]["cache_tokens"] == 256, "(c) raw full-cache profile")
    for name, ok in pngs.items():
        check(ok and f"(figures/{name})" in doc, f"(d) {name} not drawn or not in the document")
    check(doc.count("streamingllm bench -m") == 4, "(b)+(c) commands not all listed")
    if failures:
        print("\n".join(failures) + "\n--- document ---\n" + doc)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
