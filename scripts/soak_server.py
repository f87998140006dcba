#!/usr/bin/env python3
"""Server soak: many conversations through one `streamingllm serve` under a --memory-budget that
holds only a few of them (the rest spilled to --session-dir and restored), taking turns in a
random order from concurrent clients, with clients that leave in the middle of a streamed reply
and bad requests of every kind in between. At the end every conversation must equal an
undisturbed replay of it, run alone on a fresh server (no budget, no session directory, one
request at a time, never streamed): the same reply text, completion tokens, finish reason and
tokens seen after every turn.

Sampling is seeded: a conversation's first turn names a seed; each later turn names a new seed
or none (the conversation's random draw then goes on from where the last turn left it, across a
spill to disk and back).

A client that leaves: the server stops the reply after the token in progress and keeps the
conversation with the reply cut there (src/server/generate.cc: an interrupt ends the generation
after the current token; chat_session.cc: the cut reply is closed before the next turn, as a
reply that reached max_tokens is). The client does not see how far the reply got; the server
tells: tokens_seen of GET /v1/sessions/ID after the request, minus before, is the turn's prompt
tokens P plus the reply's tokens N. The undisturbed replay of that turn is the same request with
max_tokens = N, where P is learnt from a scratch conversation on the replay server that replays
the turns before and then this one in full. If N is the full reply's length, the reply was over
before the server noticed the client leaving, and the replay is the same request unchanged.
Either way the replay's text must start with everything the client had received.

Bad requests (expected status and error code by kind; anything else, a 5xx or a dropped
connection is unexpected and fails the run): bad JSON, invalid UTF-8, a body that is not an
object, unknown session, malformed session id, wrong types, max_tokens above --max-tokens, an
out-of-range temperature, an empty messages array, an unknown role, a system message sent to a
session, a body over --max-body, an unknown endpoint.

    python3 scripts/soak_server.py            # 12 conversations x 40 turns, budget for 4
    python3 scripts/soak_server.py --quick    # 4 conversations x 5 turns, budget for 2

Writes OUT/soak_server.json and OUT/soak_server.md (OUT: build/soak); exit 1 on any difference
or unexpected response.
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["Once upon a time there was a cat.", "What did the cat do next?",
           "Then a big dog came to the park.", "Tell me about the sun.", "Why was Lily sad?",
           "Tim found a red ball.", "The bird sang a song.", "Where did they go?",
           "Mom made a cake for Ben.", "The little boat sailed away."]


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


class Server:
    """A `streamingllm serve` on a free port; stderr to a temporary file."""

    def __init__(self, binary, model, extra):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="sllm_soak_serve_", suffix=".log")
        self.proc = subprocess.Popen([binary, "serve", "-m", model, "--port", "0", "-t", "1",
                                      "-q"] + extra, stderr=self.log, stdout=subprocess.DEVNULL)
        for _ in range(3000):
            text = open(self.log.name).read()
            m = re.search(r"http://127\.0\.0\.1:(\d+) ", text)
            if m:
                self.port = int(m.group(1))
                self.start_line = text.strip()
                return
            if self.proc.poll() is not None:
                sys.exit("soak_server: the server exited: " + text)
            time.sleep(0.01)
        sys.exit("soak_server: the server did not start")

    def request(self, method, path, body=None, timeout=300):
        """(status, parsed JSON or text)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode("utf-8", "replace")

    def metrics(self):
        _, text = self.request("GET", "/metrics")
        return {m.group(1): float(m.group(2))
                for m in re.finditer(r"^(\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}

    def session(self, sid):
        """tokens_seen once the conversation's last request is finished (not busy)."""
        for _ in range(6000):
            status, body = self.request("GET", f"/v1/sessions/{sid}")
            if status != 200:
                raise RuntimeError(f"GET /v1/sessions/{sid}: {status} {body}")
            if not body["busy"]:
                return body["tokens_seen"]
            time.sleep(0.005)
        raise RuntimeError(f"session {sid} stayed busy")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


def chat_body(turn, sid, max_tokens=None, stream=False):
    body = {"messages": [{"role": "user", "content": turn["user"]}],
            "max_tokens": max_tokens or turn["max_tokens"], "stream": stream}
    if sid:
        body["session_id"] = sid
    if turn["seed"] is not None:
        body["seed"] = turn["seed"]
    return body


def reply_of(status, body):
    if status != 200:
        raise RuntimeError(f"a turn failed: {status} {body}")
    ch = body["choices"][0]
    return {"text": ch["message"]["content"], "finish": ch["finish_reason"],
            "completion_tokens": body["usage"]["completion_tokens"],
            "prompt_fed": body["usage"]["prompt_tokens"]
            - body["usage"]["prompt_tokens_details"]["cached_tokens"],
            "session_id": body["session_id"]}


def streamed_turn(server, body, leave_after):
    """A streamed turn; leave_after = None reads it all, else the client closes the connection
    after that many content chunks (at least one). Returns what the client saw."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    c.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raw = r.read()
        c.close()
        raise RuntimeError(f"a streamed turn failed: {r.status} {raw!r}")
    sid = r.getheader("X-Session-Id")
    text, n_chunks, finish, usage, left = "", 0, None, None, False
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            break
        event = json.loads(line[6:])
        if "error" in event:
            raise RuntimeError(f"a streamed turn failed: {event}")
        ch = event["choices"][0]
        piece = ch["delta"].get("content", "")
        if piece:
            text += piece
            n_chunks += 1
        if ch["finish_reason"] is not None:
            finish, usage = ch["finish_reason"], event.get("usage")
        if leave_after is not None and n_chunks >= leave_after and finish is None:
            left = True
            break
    if left and c.sock is not None:
        c.sock.shutdown(socket.SHUT_RDWR)  # the client leaves: the server's next write fails
    r.close()
    c.close()
    return {"session_id": sid, "text": text, "left": left, "finish": finish, "usage": usage}


def plan(rng, n_sessions, n_turns, p_stream, p_leave):
    sessions = []
    for s in range(n_sessions):
        turns = []
        for k in range(n_turns):
            stream = rng.random() < p_stream
            leave = stream and rng.random() < p_leave
            # A client that leaves asks for a long reply, so that it is still being generated
            # when the server notices (unless the model ends it first).
            turns.append({"user": rng.choice(PROMPTS),
                          "max_tokens": rng.randint(256, 4096) if leave else rng.randint(8, 96),
                          "seed": rng.randrange(1 << 32) if k == 0 or rng.random() < 0.5 else None,
                          "stream": stream,
                          "leave_after": rng.randint(1, 6) if leave else None})
        sessions.append(turns)
    return sessions


def bad_requests(sid):
    """(kind, method, path, body, expected status, expected error code); sid: a live session."""
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 70000}]}).encode()
    u = [{"role": "user", "content": "hi"}]
    return [
        ("bad JSON", "POST", "/v1/chat/completions", b'{"messages": [', 400, "invalid_json"),
        ("invalid UTF-8", "POST", "/v1/chat/completions",
         b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "invalid_utf8"),
        ("not an object", "POST", "/v1/chat/completions", b'[1, 2]', 400, "invalid_json"),
        ("unknown session", "POST", "/v1/chat/completions",
         {"messages": u, "session_id": "no-such-session"}, 404, "session_not_found"),
        ("malformed session id", "POST", "/v1/chat/completions",
         {"messages": u, "session_id": "../etc"}, 400, "invalid_session_id"),
        ("wrong type: max_tokens", "POST", "/v1/chat/completions",
         {"messages": u, "session_id": sid, "max_tokens": "ten"}, 400, "invalid_type"),
        ("wrong type: messages", "POST", "/v1/chat/completions",
         {"messages": "hi", "session_id": sid}, 400, "invalid_type"),
        ("wrong type: seed", "POST", "/v1/chat/completions",
         {"messages": u, "session_id": sid, "seed": 1.5}, 400, "invalid_type"),
        ("huge max_tokens", "POST", "/v1/chat/completions",
         {"messages": u, "session_id": sid, "max_tokens": 10 ** 12}, 400, "invalid_value"),
        ("temperature out of range", "POST", "/v1/chat/completions",
         {"messages": u, "session_id": sid, "temperature": -1}, 400, "invalid_value"),
        ("empty messages", "POST", "/v1/chat/completions",
         {"messages": [], "session_id": sid}, 400, "invalid_value"),
        ("unknown role", "POST", "/v1/chat/completions",
         {"messages": [{"role": "robot", "content": "hi"}], "session_id": sid}, 400,
         "invalid_role"),
        ("system message to a session", "POST", "/v1/chat/completions",
         {"messages": [{"role": "system", "content": "be nice"}] + u, "session_id": sid}, 400,
         "invalid_order"),
        ("body over --max-body", "POST", "/v1/chat/completions", big, 413, "body_too_large"),
        ("unknown endpoint", "POST", "/v1/nothing", {"messages": u}, 404, "not_found"),
    ]


def soak(a, binary, model, rng, sessions, session_bytes, results):
    sdir = tempfile.mkdtemp(prefix="sllm_soak_sessions_")
    budget = a.live * session_bytes
    server = Server(binary, model, ["--window", str(a.window), "--memory-budget", str(budget),
                                    "--session-dir", sdir, "--max-body", "65536"])
    rss_start = proc_status(server.proc.pid)
    lock = threading.Lock()
    busy = set()
    next_turn = [0] * len(sessions)
    ids = [None] * len(sessions)
    log = [[] for _ in sessions]  # per conversation: what each turn did on the soak server
    counts = {"requests": 0, "turns": 0, "left": 0, "bad": {}, "unexpected": []}
    worker_rngs = [random.Random(rng.randrange(1 << 32)) for _ in range(a.clients)]
    n_total = sum(len(t) for t in sessions)
    rss_at = {}  # the server's memory after a quarter and half of the turns

    def bad_request(wrng, sid):
        kind, method, path, body, status, code = wrng.choice(bad_requests(sid))
        try:
            got, reply = server.request(method, path, body)
            got_code = reply.get("error", {}).get("code") if isinstance(reply, dict) else None
        except Exception as e:  # noqa: BLE001 - any failure to answer is unexpected
            got, got_code = None, repr(e)
        with lock:
            counts["requests"] += 1
            k = counts["bad"].setdefault(kind, {"sent": 0, "status": status, "code": code})
            k["sent"] += 1
            if got != status or got_code != code:
                counts["unexpected"].append(f"{kind}: {got} {got_code} (expected {status} {code})")

    def client(w):
        wrng = worker_rngs[w]
        while True:
            with lock:
                ready = [s for s in range(len(sessions))
                         if s not in busy and next_turn[s] < len(sessions[s])]
                if not ready and all(n == len(t) for n, t in zip(next_turn, sessions)):
                    return
                s = wrng.choice(ready) if ready else None
                if s is not None:
                    busy.add(s)
            if s is None:
                time.sleep(0.01)
                continue
            try:
                k = next_turn[s]
                turn = sessions[s][k]
                while wrng.random() < a.p_bad:
                    bad_request(wrng, ids[s] or "no-such-session")
                before = server.session(ids[s]) if ids[s] else 0
                entry = {"turn": k, "tokens_before": before}
                if turn["stream"]:
                    seen = streamed_turn(server, chat_body(turn, ids[s], stream=True),
                                         turn["leave_after"])
                    entry.update(text=seen["text"], left=seen["left"], finish=seen["finish"])
                    if seen["usage"]:
                        entry["completion_tokens"] = seen["usage"]["completion_tokens"]
                    sid = seen["session_id"]
                else:
                    rep = reply_of(*server.request("POST", "/v1/chat/completions",
                                                   chat_body(turn, ids[s])))
                    entry.update(text=rep["text"], left=False, finish=rep["finish"],
                                 completion_tokens=rep["completion_tokens"])
                    sid = rep["session_id"]
                ids[s] = sid
                entry["tokens_after"] = server.session(sid)
                with lock:
                    log[s].append(entry)
                    next_turn[s] += 1
                    counts["requests"] += 1
                    counts["turns"] += 1
                    counts["left"] += entry["left"]
                    if counts["turns"] in (n_total // 4, n_total // 2):
                        rss_at[counts["turns"]] = proc_status(server.proc.pid)
            except Exception as e:  # noqa: BLE001
                with lock:
                    counts["unexpected"].append(f"conversation {s} turn {next_turn[s]}: {e!r}")
                    next_turn[s] = len(sessions[s])  # give up on this conversation
            finally:
                with lock:
                    busy.discard(s)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(w,)) for w in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results["soak_seconds"] = time.monotonic() - t0
    results["metrics"] = server.metrics()
    rss_end = proc_status(server.proc.pid)
    results["server_start_line"] = server.start_line
    server.stop()
    shutil.rmtree(sdir, ignore_errors=True)
    results.update(counts=counts, ids=ids, log=log, budget=budget,
                   rss={"start": rss_start, "quarter": rss_at.get(n_total // 4),
                        "half": rss_at.get(n_total // 2), "end": rss_end})


def replay(a, binary, model, sessions, soak_log):
    """Each conversation alone on a fresh server, one request at a time; returns the
    differences found and the number of turns compared."""
    server = Server(binary, model, ["--window", str(a.window)])
    diffs, n_compared = [], 0

    def run(turns_with_limits):
        """A fresh conversation; turns_with_limits: (turn, max_tokens). Returns, per turn, the
        reply and tokens_seen after it."""
        sid, out = None, []
        for turn, max_tokens in turns_with_limits:
            rep = reply_of(*server.request("POST", "/v1/chat/completions",
                                           chat_body(turn, sid, max_tokens)))
            sid = rep["session_id"]
            rep["tokens_after"] = server.session(sid)
            out.append(rep)
        return out

    for s, turns in enumerate(sessions):
        done = soak_log[s]
        limits = []  # the replay's max_tokens per turn
        for k, entry in enumerate(done):
            limit = turns[k]["max_tokens"]
            if entry["left"]:
                # The turn in full after the same turns, on a scratch conversation: its prompt
                # tokens P and full length; the server kept N = seen - P of it.
                full = run([(turns[i], limits[i]) for i in range(k)] + [(turns[k], limit)])[-1]
                n = entry["tokens_after"] - entry["tokens_before"] - full["prompt_fed"]
                entry["kept_tokens"] = n
                entry["full_tokens"] = full["completion_tokens"]
                if not 1 <= n <= full["completion_tokens"]:
                    diffs.append(f"conversation {s} turn {k}: the server kept {n} tokens of a "
                                 f"reply of {full['completion_tokens']}")
                elif n < full["completion_tokens"]:
                    limit = n
            limits.append(limit)
        replies = run([(turns[k], limits[k]) for k in range(len(done))])
        for k, (entry, rep) in enumerate(zip(done, replies)):
            n_compared += 1
            where = f"conversation {s} turn {k}"
            if entry["left"]:
                if not rep["text"].startswith(entry["text"]):
                    diffs.append(f"{where}: the client saw {entry['text']!r}, the replay "
                                 f"says {rep['text']!r}")
            else:
                if rep["text"] != entry["text"]:
                    diffs.append(f"{where}: text {entry['text']!r} != replay {rep['text']!r}")
                if rep["finish"] != entry["finish"]:
                    diffs.append(f"{where}: finish {entry['finish']} != {rep['finish']}")
                if "completion_tokens" in entry and \
                        rep["completion_tokens"] != entry["completion_tokens"]:
                    diffs.append(f"{where}: {entry['completion_tokens']} tokens != "
                                 f"{rep['completion_tokens']}")
            if rep["tokens_after"] != entry["tokens_after"]:
                diffs.append(f"{where}: tokens seen {entry['tokens_after']} != replay "
                             f"{rep['tokens_after']}")
    server.stop()
    return diffs, n_compared


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "build/release/apps/streamingllm/streamingllm"))
    p.add_argument("--model",
                   default=os.path.join(ROOT, "../shared/models/stories260K/stories260K.gguf"))
    p.add_argument("--quick", action="store_true", help="4 conversations x 5 turns, budget for 2, 1 client")
    p.add_argument("--sessions", type=int, default=12)
    p.add_argument("--turns", type=int, default=40)
    p.add_argument("--live", type=int, default=4, help="conversations the budget holds")
    p.add_argument("--clients", type=int, default=3, help="concurrent clients (< --live)")
    p.add_argument("--window", type=int, default=252, help="each conversation's window (+4 sinks)")
    p.add_argument("--p-stream", type=float, default=0.5)
    p.add_argument("--p-leave", type=float, default=0.4, help="of the streamed turns")
    p.add_argument("--p-bad", type=float, default=0.4, help="bad requests before a turn (each)")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--rss-tolerance-kib", type=int, default=2048)
    p.add_argument("--out", default=os.path.join(ROOT, "build/soak"))
    a = p.parse_args()
    if a.quick:
        a.sessions, a.turns, a.live, a.clients, a.p_leave = 4, 5, 2, 1, 0.8
    if a.clients >= a.live:
        sys.exit("--clients must be below --live (else a turn may find no room: 429)")
    rng = random.Random(a.seed)
    sessions = plan(rng, a.sessions, a.turns, a.p_stream, a.p_leave)

    # One conversation's bytes, for the budget: from the start line of a probe server.
    probe = Server(a.bin, a.model, ["--window", str(a.window)])
    session_bytes = int(re.search(r"each session holds (\d+) bytes", probe.start_line).group(1))
    probe.stop()

    t0 = time.monotonic()
    res = {}
    soak(a, a.bin, a.model, rng, sessions, session_bytes, res)
    diffs, n_compared = replay(a, a.bin, a.model, sessions, res["log"])
    seconds = time.monotonic() - t0
    c, m = res["counts"], res["metrics"]
    n_left = sum(e["left"] for conv in res["log"] for e in conv)
    n_cut = sum(1 for conv in res["log"] for e in conv
                if e["left"] and e.get("kept_tokens", 0) < e.get("full_tokens", 0))
    n_bad = sum(k["sent"] for k in c["bad"].values())
    evicted = m.get("sllm_sessions_evicted_total", 0)
    restored = m.get("sllm_sessions_restored_total", 0)
    rss = res["rss"]
    growth = rss["end"]["VmRSS"] - rss["quarter"]["VmRSS"]
    checks = [("no unexpected response", not c["unexpected"])]
    if not a.quick:  # a quarter of 20 turns is too early for the server to have settled
        checks.append((f"server VmRSS end - after 1/4 of the turns <= {a.rss_tolerance_kib} KiB "
                       f"({growth / 1024:+.0f} KiB)", growth <= a.rss_tolerance_kib * 1024))
    checks += [("every conversation equals its undisturbed replay", not diffs),
               ("every planned turn ran", c["turns"] == a.sessions * a.turns),
               ("conversations were spilled and restored", evicted > 0 and restored > 0),
               ("clients left mid-reply", n_left > 0),
               ("replies cut == generations interrupted (/metrics)",
                n_cut == m.get("sllm_generations_interrupted_total", -1))]
    result = {
        "sessions": a.sessions, "turns": a.turns, "live": a.live, "clients": a.clients,
        "window": a.window, "seed": a.seed, "budget_bytes": res["budget"],
        "session_bytes": session_bytes, "seconds": seconds, "soak_seconds": res["soak_seconds"],
        "requests": c["requests"], "turn_requests": c["turns"], "bad_requests": n_bad,
        "bad_by_kind": c["bad"], "unexpected": c["unexpected"], "clients_left": n_left,
        "replies_cut": n_cut, "evicted": evicted, "restored": restored,
        "server_requests_by_status": {k: v for k, v in m.items()
                                      if k.startswith("sllm_requests_total")},
        "completion_tokens": m.get("sllm_completion_tokens_total"),
        "interrupted": m.get("sllm_generations_interrupted_total"),
        "decode_batch_peak": m.get("sllm_decode_batch_peak"),
        "turns_compared": n_compared, "differences": diffs,
        "server_rss": res["rss"], "checks": [{"check": k, "ok": ok} for k, ok in checks],
        "ok": all(ok for _, ok in checks), "log": res["log"],
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "soak_server.json"), "w") as f:
        json.dump(result, f, indent=2)
    md = [f"Server soak: {a.sessions} conversations x {a.turns} turns from {a.clients} concurrent "
          f"clients, --memory-budget for {a.live} ({res['budget']} bytes), --session-dir, window "
          f"{a.window} + 4 sinks, seed {a.seed}: {res['soak_seconds']:.0f} s, replay included "
          f"{seconds:.0f} s.", "",
          "| | |", "|---|---:|",
          f"| requests | {c['requests']} |",
          f"| turns (streamed and not) | {c['turns']} |",
          f"| clients that left mid-reply (replies cut / already over) | {n_left} "
          f"({n_cut} / {n_left - n_cut}) |",
          f"| bad requests (all answered as expected) | {n_bad} |",
          f"| unexpected responses | {len(c['unexpected'])} |",
          f"| completion tokens | {int(m.get('sllm_completion_tokens_total', 0))} |",
          f"| generations interrupted (/metrics) | {int(m.get('sllm_generations_interrupted_total', 0))} |",
          f"| most requests in one decoding step | {int(m.get('sllm_decode_batch_peak', 0))} |",
          f"| sessions evicted / restored (/metrics) | {int(evicted)} / {int(restored)} |",
          f"| turns compared with the undisturbed replay / equal | {n_compared} / "
          f"{n_compared - len(diffs)} |",
          "| server VmRSS (MiB): at start / after 1/4 of the turns / 1/2 / end | " +
          " / ".join(f"{rss[k]['VmRSS'] / 2**20:.2f}" for k in ("start", "quarter", "half", "end"))
          + " |",
          "| server VmHWM (MiB): after 1/4 of the turns / 1/2 / end | " +
          " / ".join(f"{rss[k]['VmHWM'] / 2**20:.2f}" for k in ("quarter", "half", "end")) + " |",
          "", "| bad request | sent | expected |", "|---|---:|---|"]
    for kind, k in sorted(c["bad"].items()):
        md.append(f"| {kind} | {k['sent']} | {k['status']} {k['code']} |")
    md += [""] + [f"- {'PASS' if ok else 'FAIL'}: {k}" for k, ok in checks]
    md += [f"- unexpected: {u}" for u in c["unexpected"][:20]]
    md += [f"- difference: {d}" for d in diffs[:20]]
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out, "soak_server.md"), "w") as f:
        f.write(text)
    print(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
