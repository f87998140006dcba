#!/usr/bin/env python3
"""Issue 13, acceptance 2 (benchmark): a long conversation through `streamingllm serve` costs
fixed memory. Runs N turns (default 200) through session_id, then N turns from a client that
resends the whole history (no session id), and prints after turn 20 and turn N: the server's
RSS, the cache bytes /metrics reports, the prompt tokens fed per request (the largest over the
turns so far) and the tokens the conversation has seen.

Usage: scripts/bench_server_turns.py [--cli build/release/apps/streamingllm/streamingllm]
           [--model ../shared/models/stories260K/stories260K.gguf] [--window 256] [--turns 200]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TURNS = ["Once upon a time there was a cat.", "What did the cat do?",
         "Then a big dog came to the park.", "Tell me about the sun.", "Why was Lily sad?"]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=os.path.join(ROOT, "build/release/apps/streamingllm/streamingllm"))
    ap.add_argument("--model", default=os.path.join(ROOT, "../shared/models/stories260K/stories260K.gguf"))
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()

    log = tempfile.NamedTemporaryFile("w+", prefix="sllm_bench_serve_", suffix=".log")
    proc = subprocess.Popen([args.cli, "serve", "-m", args.model, "--port", "0", "--window",
                             str(args.window), "-t", "1", "-q", "--max-body", str(64 << 20)],
                            stderr=log, stdout=subprocess.DEVNULL)
    port = 0
    for _ in range(3000):
        m = re.search(r"http://127\.0\.0\.1:(\d+) ", open(log.name).read())
        if m:
            port = int(m.group(1))
            break
        if proc.poll() is not None:
            sys.exit("the server exited: " + open(log.name).read())
        time.sleep(0.01)
    start_line = open(log.name).read().strip()
    base = "http://127.0.0.1:%d" % port

    def post(body):
        req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())

    def metric(name):
        with urllib.request.urlopen(base + "/metrics", timeout=60) as r:
            return int(float(re.search(r"\n%s (\S+)\n" % name, r.read().decode()).group(1)))

    print(start_line)
    print("load average: " + open("/proc/loadavg").read().strip())
    print("| client | after turn | server RSS (KiB) | sllm_cache_bytes | sessions live | "
          "max prompt tokens fed per request | tokens seen | s |")
    print("|---|---|---|---|---|---|---|---|")
    rows = {}
    for mode in ("session_id", "resends history"):
        session_id, messages, max_fed, t0 = None, [], 0, time.time()
        for t in range(args.turns):
            text = "%s (%d)" % (TURNS[t % len(TURNS)], t)
            body = {"max_tokens": args.max_tokens, "seed": t}
            if mode == "session_id":
                body["messages"] = [{"role": "user", "content": text}]
                if session_id:
                    body["session_id"] = session_id
            else:
                messages.append({"role": "user", "content": text})
                body["messages"] = messages
            r = post(body)
            session_id = r["session_id"]
            usage = r["usage"]
            fed = usage["prompt_tokens"] - usage["prompt_tokens_details"]["cached_tokens"]
            if t > 0:
                max_fed = max(max_fed, fed)
            if mode != "session_id":
                messages.append({"role": "assistant",
                                 "content": r["choices"][0]["message"]["content"]})
            if t + 1 == 20 or (t + 1) % 100 == 0 or t + 1 == args.turns:
                row = (mode, t + 1, rss_kib(proc.pid), metric("sllm_cache_bytes"),
                       metric("sllm_sessions_live"), max_fed, usage["total_tokens"],
                       round(time.time() - t0, 1))
                rows[(mode, t + 1)] = row
                print("| %s | %d | %d | %d | %d | %d | %d | %.1f |" % row)
                sys.stdout.flush()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    for mode in ("session_id", "resends history"):
        a, b = rows[(mode, 20)], rows[(mode, args.turns)]
        print("%s: RSS %+d KiB from turn 20 to turn %d (%+.1f%%)" %
              (mode, b[2] - a[2], args.turns, 100.0 * (b[2] - a[2]) / a[2]))


if __name__ == "__main__":
    main()
