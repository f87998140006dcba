#!/usr/bin/env python3
"""Regenerates docs/PERFORMANCE.md from the engine's own output, in one unattended run.

    python3 scripts/performance.py [--models-dir /work/models] [--out docs/PERFORMANCE.md]
                                   [--rounds 5] [--threads 1,2] [--no-peer] [--with-7b] [--quick]

It writes: the machine (CPU, cores, AVX2/AVX-512/VNNI flags, RAM, kernel, the Highway target the
kernels dispatch to, the load average before and after), the exact commands it ran, and
(a) streamingllm against llama.cpp (bench/peer_speed.py: the same GGUF, the same threads,
    interleaved, medians) for stories260K (F32) and the TinyLlama-1.1B-shaped models in the
    models directory (tinyllama-{f16,q8_0,q4_0,q4_K_M,q6_K}.gguf; missing ones are named and
    skipped);
(b) the `streamingllm bench` speed report per model: read bandwidth, prefill, decode and the
    share of the bandwidth decode reaches;
(c) streaming against recompute per-token latency at caches 256..4096 on a 1.1B-shaped model
    (the paper's Figure 10) and the full-cache decode latency against the 256-token one;
(d) plots under docs/figures/ (gnuplot): the latency table and the decode profiles.
The peer columns are skipped (and the document says so) when peer/node_modules or node is
missing, or with --no-peer. --quick: stories260K only, one round, small caches (seconds; the
performance_script test runs it). The full run takes about an hour on 2 cores; it prints and
records its own duration.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_TYPES = ["f16", "q8_0", "q4_0", "q4_K_M", "q6_K"]
LATENCY_TYPES = ["q8_0", "q4_K_M", "q4_0", "f16"]  # the first present is section (c)'s model

_spec = importlib.util.spec_from_file_location("peer_speed",
                                               os.path.join(ROOT, "bench", "peer_speed.py"))
peer_speed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer_speed)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def machine():
    cpuinfo = read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.M)
    flags = set(flags.group(1).split()) if flags else set()
    mem = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)
    wanted = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
              "avx512_bf16", "avx512vbmi"]
    return dict(cpu=model.group(1).strip() if model else platform.processor(),
                cores=os.cpu_count(), flags=[f for f in wanted if f in flags],
                missing_flags=[f for f in wanted if f not in flags],
                ram_gib=int(mem.group(1)) / 2**20 if mem else float("nan"),
                kernel=platform.release(), python=platform.python_version())


def loadavg():
    return " ".join(read("/proc/loadavg").split()[:3])


def git_commit():
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def peer_version():
    j = read(os.path.join(ROOT, "peer", "node_modules", "node-llama-cpp", "package.json"))
    return json.loads(j).get("version", "?") if j else None


def vocab_size(binary, model):
    r = subprocess.run([binary, "info", "-m", model], capture_output=True, text=True, check=True)
    m = re.search(r"^tokenizer:.*\((\d+) tokens", r.stdout, re.M)
    if not m:
        raise RuntimeError(f"{model}: `streamingllm info` states no vocabulary size")
    return int(m.group(1))


def failure(e):
    """The last line of a failed command's stderr, or the exception."""
    err = getattr(e, "stderr", None)
    if isinstance(err, bytes):
        err = err.decode(errors="replace")
    lines = [ln for ln in (err or "").splitlines() if ln.strip()]
    return (lines[-1] if lines else str(e)).replace("|", "/")[:200]


class Runner:
    """Runs the engine and records every command line for the document."""

    def __init__(self, binary):
        self.binary = binary
        self.commands = []

    def bench(self, model, threads, args):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [self.binary, "bench", "-m", model, "-t", str(threads)] + args
            self.commands.append(shlex.join(cmd + ["--json", "OUT.json"]))
            subprocess.run(cmd + ["--json", out.name], check=True, capture_output=True)
            with open(out.name) as f:
                return json.load(f)


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}×"


def section_peer(a, runner, models, use_peer, quick):
    rows = []
    prefill, decode = (64, 16) if quick else (512, 64)
    for name, path in models:
        try:
            vocab = vocab_size(runner.binary, path)
        except (subprocess.CalledProcessError, RuntimeError) as e:
            # An unattended hour must not end in nothing: the rows say what failed.
            log(f"(a) {name} failed: {failure(e)}")
            rows += [dict(name=name, threads=t, error=failure(e)) for t in a.threads]
            continue
        ids = peer_speed.write_ids(vocab, max(prefill, 8) + 8)
        try:
            for t in a.threads:
                log(f"(a) {name}, {t} thread(s), {a.rounds} round(s)")
                cmd = ["python3", "bench/peer_speed.py", path, "--threads", str(t), "--rounds",
                       str(a.rounds), "--prefill", str(prefill), "--decode", str(decode),
                       "--vocab", str(vocab)]
                runner.commands.append(shlex.join(cmd) + ("" if use_peer else "   # ours only"))
                try:
                    r = peer_speed.compare(runner.binary, path, ids, t, a.rounds, prefill, decode,
                                           peer=use_peer)
                except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as e:
                    log(f"(a) {name}, {t} thread(s) failed: {failure(e)}")
                    rows.append(dict(name=name, threads=t, error=failure(e)))
                    continue
                r["name"] = name
                rows.append(r)
        finally:
            os.unlink(ids)
    lines = ["| model | threads | prefill ours | prefill llama.cpp | ratio | decode ours | "
             "decode llama.cpp | ratio | load |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | {r['threads']} | failed: {r['error']} |||||||")
            continue
        m = r["median"]
        th = m.get("theirs")
        lines.append(
            f"| {r['name']} | {r['threads']} | {m['ours'][0]:.1f} | "
            f"{'–' if th is None else f'{th[0]:.1f}'} | {fmt_ratio(r['prefill_ratio'])} | "
            f"{m['ours'][1]:.2f} | {'–' if th is None else f'{th[1]:.2f}'} | "
            f"{fmt_ratio(r['decode_ratio'])} | {r['load_average']:.2f} |")
    text = [f"Tokens per second, medians of {a.rounds} round(s), ours and llama.cpp alternating "
            f"in order every round; prefill: a {prefill}-token prompt in one batch; decode: "
            f"{decode} tokens after an 8-token prompt. Load: the 1-minute load average, median "
            f"over the rounds.", ""] + lines
    if use_peer:
        short = [f"{r['name']} ({r['threads']} thr): decode {r['decode_ratio']:.2f}×, prefill "
                 f"{r['prefill_ratio']:.2f}×" for r in rows
                 if "error" not in r and (r["decode_ratio"] < 1.2 or r["prefill_ratio"] < 1.0)]
        text += ["", "Acceptance 3 (decode ≥ 1.2×, prefill ≥ 1.0× llama.cpp): " +
                 ("met by every row." if not short else "short of it: " + "; ".join(short) + ".")]
    return rows, text


def section_speed(a, runner, models, quick):
    rows = []
    args = (["--rounds", "1", "--prefill", "64", "--decode", "16", "--caches", "",
             "--full-cache", "128", "--bandwidth-mib", "16"] if quick else
            ["--rounds", "3", "--caches", "", "--bandwidth-mib", "512"])
    for name, path in models:
        for t in a.threads:
            log(f"(b) {name}, {t} thread(s)")
            try:
                j = runner.bench(path, t, args)
            except (subprocess.CalledProcessError, OSError, ValueError) as e:
                log(f"(b) {name}, {t} thread(s) failed: {failure(e)}")
                rows.append(dict(name=name, threads=t, error=failure(e)))
                continue
            j["name"] = name
            j["load"] = loadavg()
            rows.append(j)
    lines = ["| model | threads | file MiB | read GB/s | prefill tok/s | decode tok/s | share | "
             "decode, full cache | share | peak RSS MiB | load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for j in rows:
        if "error" in j:
            lines.append(f"| {j['name']} | {j['threads']} | failed: {j['error']} ||||||||")
            continue
        full = j.get("decode_full", {})
        lines.append(
            f"| {j['name']} | {j['threads']} | {j['file_bytes'] / 2**20:.1f} | "
            f"{j['bandwidth_gbs']['best']:.1f} | {j['prefill']['tok_s']:.1f} | "
            f"{j['decode_short']['tok_s']:.2f} | {100 * j['decode_short']['bandwidth_share']:.0f}% | "
            f"{full.get('tok_s', 0):.2f} ({full.get('cache_tokens', 0)}) | "
            f"{100 * full.get('bandwidth_share', 0):.0f}% | {j['peak_rss_bytes'] / 2**20:.0f} | "
            f"{j['load']} |")
    text = ["`streamingllm bench` (the speed report): read bandwidth from a STREAM-like probe in "
            "the same process (best of 5 passes), share = file bytes × decode tok/s ÷ bandwidth "
            "(at real sizes a decoded token reads every weight once; on stories260K the weights "
            "sit in the caches, so the share is meaningless there). Kernels dispatch to "
            f"{', '.join(sorted({j['simd_target'] for j in rows if 'error' not in j}))}.", ""] + lines
    text += profile_lines(rows)
    at2 = [j for j in rows if "error" not in j and j["threads"] == 2 and
           any(k in j["name"] for k in ("q8_0", "q4_K_M"))]
    if at2:
        text += ["", "Acceptance 4 (decode ≥ 85% of the read bandwidth at 2 threads, Q8_0 and "
                 "Q4_K_M): " + "; ".join(
                     f"{j['name']} {100 * j['decode_short']['bandwidth_share']:.0f}%"
                     for j in at2) + "."]
    return rows, text


PROFILE_COLUMNS = ["qkv", "attention", "attn_output", "ffn", "lm_head"]


def profile_lines(rows):
    """Where a decoded token's time goes (the speed report's profiled decode), per model and
    threads: each phase's share of the token's wall time and the weight bytes it read per second;
    "other" is the embedding, norms, residuals, sampling and bookkeeping."""
    rows = [j for j in rows if "error" not in j and j.get("decode_profile")]
    if not rows:
        return []
    lines = ["| model | threads | ms/token | " + " | ".join(PROFILE_COLUMNS) + " | other |",
             "|---|---:|---:|" + "---:|" * (len(PROFILE_COLUMNS) + 1)]
    for j in rows:
        prof = j["decode_profile"]
        total = prof["seconds"]
        phases = {ph["phase"]: ph for ph in prof["phases"]}
        cells = []
        for name in PROFILE_COLUMNS:
            ph = phases.get(name, dict(seconds=0, weight_bytes=0))
            cell = f"{100 * ph['seconds'] / total:.0f}%"
            if ph["weight_bytes"] and ph["seconds"] > 0:
                cell += f" · {ph['weight_bytes'] / ph['seconds'] / 1e9:.1f} GB/s"
            cells.append(cell)
        other = total - sum(phases[n]["seconds"] for n in PROFILE_COLUMNS if n in phases)
        lines.append(f"| {j['name']} | {j['threads']} | {1e3 * total / prof['tokens']:.2f} | " +
                     " | ".join(cells) + f" | {100 * other / total:.0f}% |")
    return ["", "Where a decoded token's time goes (`bench`'s profiled decode, a separate run of "
            "the same length: `Stream::set_profiling`): each phase's share of the wall time, and "
            "for the matrix phases the weight bytes they read per second, against the read "
            "bandwidth above. Other: embedding, norms, residuals, sampling, bookkeeping.", ""] + lines


def section_latency(a, runner, model, quick):
    name, path = model
    caches = "64,128,256" if quick else "256,512,1024,2048,4096"
    largest = caches.split(",")[-1]
    # The profiled decode (16 tokens) in a full cache of the largest size: where the time goes
    # once attention reads the whole cache.
    profiled = ["--decode", "16", "--full-cache", "0", "--profile-cache", largest]
    args = ["--rounds", "1", "--prefill", "0", "--caches", caches,
            "--streaming-tokens", "4" if quick else "16", "--recompute-tokens",
            "1" if quick else "3", "--bandwidth-mib", "16"] + profiled
    t = max(a.threads)
    log(f"(c) {name}, {t} thread(s), caches {caches}")
    j = runner.bench(path, t, args)
    j["name"] = name
    j["load"] = loadavg()
    lines = ["| cache | streaming ms/token | recompute ms/token | speed-up | tokens timed |",
             "|---:|---:|---:|---:|---|"]
    for r in j["latency_by_cache"]:
        lines.append(f"| {r['cache']} | {r['streaming_ms']:.2f} | {r['recompute_ms']:.1f} | "
                     f"{r['recompute_ms'] / r['streaming_ms']:.1f}× | {r['streaming_tokens']} / "
                     f"{r['recompute_tokens']} |")
    rows = j["latency_by_cache"]
    ratio = j["streaming_largest_over_smallest"]
    # The same flatness with an f16 cache (llama.cpp's default): half the bytes per cached row.
    ends = f"{rows[0]['cache']},{rows[-1]['cache']}"
    log(f"(c) {name}, {t} thread(s), f16 cache, caches {ends}")
    j16 = runner.bench(path, t, ["--rounds", "1", "--prefill", "0", "--caches",
                                 ends, "--streaming-tokens", "4" if quick else "16",
                                 "--recompute-tokens", "0", "--kv-type", "f16",
                                 "--bandwidth-mib", "16"] + profiled)
    j["f16"] = j16
    r16 = j16["latency_by_cache"]
    text = [f"{name}, {t} threads, f32 KV cache, load {j['load']}. Per-token latency (median) "
            "once the cache is full: `streaming` (attention sinks + window, cached keys) against "
            "`recompute` (the window's keys and values recomputed for every token: a whole-cache "
            "prefill; at most 2 tokens timed from cache 2048 on).", ""] + lines + [
        "", ("(quick mode: small caches, not the acceptance measurement) " if quick else "") +
        f"Acceptance 5 (streaming decode latency with a full {rows[-1]['cache']}-token "
        f"cache within 25% of the {rows[0]['cache']}-token one): ratio {ratio:.3f} — "
        f"{'met' if ratio <= 1.25 else 'not met'}. With an f16 cache: "
        f"{r16[0]['streaming_ms']:.2f} ms at {r16[0]['cache']}, {r16[-1]['streaming_ms']:.2f} ms "
        f"at {r16[-1]['cache']}, ratio {j16['streaming_largest_over_smallest']:.3f} — "
        f"{'met' if j16['streaming_largest_over_smallest'] <= 1.25 else 'not met'}."]
    # Where a token's time goes in the full largest cache, f32 and f16 (the same table as (b)'s).
    prof = profile_lines([dict(jj, threads=t, name=f"{name}, {kv} KV, {largest}-token cache")
                          for jj, kv in ((j, "f32"), (j16, "f16"))])
    if prof:
        text += ["", f"Where a decoded token's time goes with the cache full ({largest} tokens; "
                 "`bench --profile-cache`, a separate profiled run of 16 tokens): each phase's "
                 "share of the wall time, the matrix phases' weight GB/s.", ""] + prof[3:]
    return j, text


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)


def section_plot(figures_dir, latency, speed_rows, quick):
    """The latency table as a log-log plot and, per 1.1B-shaped model, the decoded token's
    profile as stacked bars, drawn by gnuplot (Debian's gnuplot-nox, as scripts/reproduce.sh)."""
    if shutil.which("gnuplot") is None:
        return None, ["gnuplot is not installed (`apt-get install gnuplot-nox`): no plots this "
                      "time; the tables above hold every figure."]
    os.makedirs(figures_dir, exist_ok=True)
    suffix = "_quick" if quick else ""
    rows = latency["latency_by_cache"]
    data = os.path.join(figures_dir, f"latency{suffix}.dat")
    with open(data, "w") as f:
        for r in rows:
            f.write(f"{r['cache']} {r['streaming_ms']} {r['recompute_ms']}\n")
    latency_png = f"latency{suffix}.png"
    gnuplot(f"""set terminal pngcairo noenhanced size 720,480 font "sans,10"
set output "{os.path.join(figures_dir, latency_png)}"
set title "{latency['name']}: per-token latency with a full cache"
set logscale xy 2
set xlabel "cache tokens"
set ylabel "ms per token"
set key top left
set grid
plot "{data}" using 1:2 with linespoints pt 7 title "streaming (sinks + window)", \\
     "{data}" using 1:3 with linespoints pt 5 title "recompute (window re-run per token)"
""")
    os.unlink(data)
    out = [f"![per-token latency](figures/{latency_png})"]

    profiled = [j for j in speed_rows if "error" not in j and j.get("decode_profile")]
    if profiled:
        data = os.path.join(figures_dir, f"profile{suffix}.dat")
        with open(data, "w") as f:
            for j in profiled:
                prof = j["decode_profile"]
                ms = {ph["phase"]: 1e3 * ph["seconds"] / prof["tokens"] for ph in prof["phases"]}
                total = 1e3 * prof["seconds"] / prof["tokens"]
                cols = [ms.get(n, 0) for n in PROFILE_COLUMNS]
                label = f"{j['name'].replace('TinyLlama-1.1B ', '')}, {j['threads']}t"
                f.write(f'"{label}" ' + " ".join(f"{c:.4f}" for c in cols) +
                        f" {max(0.0, total - sum(cols)):.4f}\n")
        profile_png = f"decode_profile{suffix}.png"
        titles = ", ".join(f'"" using {i + 2} title "{n}"'
                           for i, n in enumerate(PROFILE_COLUMNS + ["other"]))
        titles = titles.replace('""', f'"{data}"', 1).replace(', ""', ", ''")
        gnuplot(f"""set terminal pngcairo noenhanced size 900,480 font "sans,10"
set output "{os.path.join(figures_dir, profile_png)}"
set title "Where a decoded token's time goes (ms per token)"
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -30
set ylabel "ms per token"
set key outside right
set grid ytics
plot {titles.replace('using 2', 'using 2:xtic(1)', 1)}
""")
        os.unlink(data)
        out.append(f"![decode profile](figures/{profile_png})")
    return latency_png, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "release", "apps", "streamingllm",
                                                  "streamingllm"))
    ap.add_argument("--models-dir", default="/work/models")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    ap.add_argument("--figures", help="default: figures/ beside --out")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, help="peer comparison rounds (default 5; --quick 1)")
    ap.add_argument("--no-peer", action="store_true", help="ours only, no llama.cpp columns")
    ap.add_argument("--with-7b", action="store_true",
                    help="also llama2-7b-q4_0.gguf of the models dir in (a) and (b) (long)")
    ap.add_argument("--quick", action="store_true", help="stories260K only, one round, seconds")
    ap.add_argument("--json", help="also write every raw result here")
    a = ap.parse_args()
    a.threads = [int(t) for t in a.threads.split(",")]
    a.rounds = a.rounds or (1 if a.quick else 5)
    figures = a.figures or os.path.join(os.path.dirname(os.path.abspath(a.out)), "figures")
    start = time.time()
    load_before = loadavg()
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"{a.bin}: no streamingllm binary (build the release preset first, or --bin)")

    stories = os.path.join(a.shared, "models", "stories260K", "stories260K.gguf")
    if not os.path.exists(stories):
        sys.exit(f"{stories}: stories260K is missing (--shared)")
    models, skipped = [("stories260K (F32)", stories)], []
    if not a.quick:
        candidates = [(f"TinyLlama-1.1B {t}", os.path.join(a.models_dir, f"tinyllama-{t}.gguf"))
                      for t in TINY_TYPES]
        if a.with_7b:
            candidates.append(("Llama-2-7B q4_0",
                               os.path.join(a.models_dir, "llama2-7b-q4_0.gguf")))
        for name, path in candidates:
            (models if os.path.exists(path) else skipped).append((name, path))

    peer_missing = None
    if a.no_peer:
        peer_missing = "skipped (--no-peer)"
    elif peer_version() is None:
        peer_missing = "skipped: peer/node_modules (node-llama-cpp) is missing"
    elif shutil.which("node") is None:
        peer_missing = "skipped: node is not on PATH"
    if peer_missing:
        log(f"llama.cpp columns {peer_missing}")

    runner = Runner(a.bin)
    peer_rows, peer_text = section_peer(a, runner, models, peer_missing is None, a.quick)
    speed_rows, speed_text = section_speed(a, runner, models, a.quick)
    tiny = [m for t in LATENCY_TYPES for m in models if m[0] == f"TinyLlama-1.1B {t}"]
    latency_model = tiny[0] if tiny else models[0]
    try:
        latency, latency_text = section_latency(a, runner, latency_model, a.quick)
        _, plot_text = section_plot(figures, latency, speed_rows, a.quick)
    except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as e:
        log(f"(c) {latency_model[0]} failed: {failure(e)}")
        latency = dict(name=latency_model[0], error=failure(e))
        latency_text = [f"{latency_model[0]}: failed: {failure(e)}"]
        plot_text = ["No plot: (c) failed."]
    load_after = loadavg()
    minutes = (time.time() - start) / 60

    m = machine()
    targets = sorted({j["simd_target"] for j in speed_rows if "error" not in j})
    cmdline = shlex.join(["python3", "scripts/performance.py"] + sys.argv[1:])
    doc = [
        "# Performance", "",
        f"Generated by `{cmdline}` on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} "
        f"(git {git_commit()}) in {minutes:.1f} minutes. Do not edit by hand: rerun the script "
        "on a quiet machine (a full run takes about an hour on 2 cores; `--quick` seconds).",
        "" if not a.quick else "\n**Quick mode**: stories260K only, one round — a check that "
        "the script works, not a measurement.", "",
        "## Machine", "",
        f"- CPU: {m['cpu']}, {m['cores']} cores visible",
        f"- SIMD flags: {', '.join(m['flags'])}" +
        (f" (absent: {', '.join(m['missing_flags'])})" if m["missing_flags"] else ""),
        f"- Highway target the kernels dispatch to: {', '.join(targets)}",
        f"- RAM: {m['ram_gib']:.1f} GiB; kernel {m['kernel']}; Python {m['python']}",
        f"- llama.cpp: " + (f"node-llama-cpp {peer_version()} (its prebuilt CPU library)"
                            if not peer_missing else peer_missing),
        f"- Load average (1, 5, 15 min) before: {load_before}; after: {load_after}", "",
        "## (a) streamingllm against llama.cpp, same file, same threads", ""] + peer_text
    if skipped:
        doc += ["", "Models not found in " + a.models_dir + " (skipped): " +
                ", ".join(os.path.basename(p) for _, p in skipped) + "."]
    if peer_missing:
        doc += ["", f"llama.cpp columns {peer_missing}."]
    doc += ["", "## (b) Speed report: bandwidth and decode share", ""] + speed_text
    doc += ["", "## (c) Streaming against recompute (the paper's Figure 10)", ""] + latency_text
    doc += ["", "## (d) Figures", ""] + plot_text
    doc += ["", "## Commands", "",
            "Every command this run executed (`OUT.json` stands for a temporary file):", "",
            "```"] + runner.commands + ["```", ""]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(doc))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(machine=m, peer=peer_rows, speed=speed_rows, latency=latency,
                           load_before=load_before, load_after=load_after, minutes=minutes), f,
                      indent=1)
    log(f"wrote {a.out} in {minutes:.1f} minutes")
    n_failed = (sum("error" in r for r in peer_rows) + sum("error" in j for j in speed_rows) +
                ("error" in latency))
    if n_failed:
        sys.exit(f"{n_failed} measurement(s) failed: see the 'failed:' entries in {a.out}")


if __name__ == "__main__":
    main()
