#!/usr/bin/env python3
"""Replays hostile inputs against the streamingllm CLI and checks that each one ends well.

"Well" means: a clean run (exit 0) or a clear error (exit 1..127 with "error:" on stderr), never a
signal (abort, segfault), within a time limit, with a peak RSS under 1 GiB, and without touching
the paths it must not touch (/dev/full stays a character device). The inputs are generated, not
listed: every numeric flag of every subcommand with edge values, GGUF files derived from the
bundled model with one metadata key or tensor field wrong at a time (structure-aware), hostile
texts, and outputs that cannot be written.

    python3 scripts/probe_hostile.py [--cli build/release/apps/streamingllm/streamingllm]
                                     [--only flags,gguf,text,output] [--jobs 2] [--verbose]

Stdlib only. Prints one line per failure and a summary; exits 1 if any case failed.
"""
import argparse
import concurrent.futures
import os
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "..", "shared", "models", "stories260K", "stories260K.gguf")
TEXT = os.path.join(ROOT, "..", "shared", "data", "text", "tinystories_val_head.txt")
RSS_LIMIT = 1 << 30
TIME_LIMIT = 30.0


# ------------------------------------------------------------------------------------------------
# Running one case

class Case:
    # endless: a value that legitimately asks for an endless (or very long) run, such as -n -1 or
    # ppl --tokens 0 (the whole text): still running after a few seconds is a correct run.
    def __init__(self, name, args, stdin=b"", timeout=TIME_LIMIT, check=None, shell=False,
                 endless=False):
        self.name, self.args, self.stdin, self.timeout = name, args, stdin, timeout
        self.check, self.shell, self.endless = check, shell, endless
        if endless:
            self.timeout = 5.0


# Process groups of the cases running now: killed when the probe itself ends early, so that no
# endless case outlives it.
LIVE_GROUPS = set()


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_live_groups(*_):
    for pgid in list(LIVE_GROUPS):
        kill_group(pgid)
    os._exit(130)


def run_case(cli, case):
    """Runs the case in a process group of its own; returns (ok, message).

    The child is reaped with wait4(), which gives its own peak RSS (RUSAGE_CHILDREN would mix
    in every earlier child)."""
    cmd = ["bash", "-c", case.args.replace("$CLI", cli)] if case.shell else [cli] + case.args
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, \
            tempfile.TemporaryFile() as ferr:
        fin.write(case.stdin)
        fin.seek(0)
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, start_new_session=True)
        LIVE_GROUPS.add(p.pid)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.monotonic() - start > case.timeout:
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(p.pid, 0)
                timed_out = True
                break
            time.sleep(0.01)
        p.returncode = 0  # reaped here; keep Popen from waiting again
        kill_group(p.pid)  # anything the case left running (a shell case's pipeline)
        LIVE_GROUPS.discard(p.pid)
        seconds = time.monotonic() - start
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    rss = usage.ru_maxrss * 1024
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    err_text = err.decode("utf-8", "replace")
    if timed_out and case.endless:
        return True, f"still running after {case.timeout:.0f} s: a correct endless run"
    if timed_out:
        return False, f"timed out after {case.timeout:.0f} s"
    if rc < 0:
        return False, (f"killed by signal {-rc} ({signal.Signals(-rc).name}); "
                       f"stderr: {err_text[-300:]!r}")
    if not case.shell and rc >= 128:
        return False, f"exit {rc}; stderr: {err_text[-300:]!r}"
    if not case.shell and rc != 0 and not err_text.strip():
        return False, f"exit {rc} without a message on stderr"
    for crash in ("terminate called", "AddressSanitizer", "runtime error:", "LeakSanitizer"):
        if crash in err_text:
            return False, f"exit {rc} with a crash report: {err_text[-400:]!r}"
    if rss > RSS_LIMIT:
        return False, f"peak RSS {rss} bytes > 1 GiB"
    if case.check is not None:
        problem = case.check(rc, out, err_text)
        if problem:
            return False, problem
    return True, f"exit {rc} in {seconds:.2f} s, peak RSS {rss >> 20} MiB"


# ------------------------------------------------------------------------------------------------
# GGUF reading and writing (v3), enough to rewrite the bundled model with one thing wrong

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
SCALAR = {T_U8: "B", T_I8: "b", T_U16: "H", T_I16: "h", T_U32: "I", T_I32: "i", T_F32: "f",
          T_BOOL: "?", T_U64: "Q", T_I64: "q", T_F64: "d"}


class Reader:
    def __init__(self, data):
        self.d, self.o = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.d, self.o)
        self.o += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("Q")
        s = self.d[self.o:self.o + n]
        self.o += n
        return s

    def value(self, t):
        if t == T_STR:
            return self.string()
        if t == T_ARR:
            et, n = self.take("I"), self.take("Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.take(SCALAR[t])


def write_value(t, v):
    if t == T_STR:
        return struct.pack("<Q", len(v)) + v
    if t == T_ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(write_value(et, x) for x in items)
    return struct.pack("<" + SCALAR[t], v)


def read_gguf(path):
    data = open(path, "rb").read()
    r = Reader(data)
    magic, version, n_tensors, n_kv = r.take("4s"), r.take("I"), r.take("Q"), r.take("Q")
    assert magic == b"GGUF" and version == 3
    kv = []
    for _ in range(n_kv):
        key = r.string()
        t = r.take("I")
        kv.append([key, t, r.value(t)])
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.take("I")
        dims = [r.take("Q") for _ in range(n_dims)]
        ttype, offset = r.take("I"), r.take("Q")
        tensors.append([name, dims, ttype, offset])
    align = 32
    for key, t, v in kv:
        if key == b"general.alignment":
            align = v
    start = (r.o + align - 1) // align * align
    return kv, tensors, data[start:]


def write_gguf(path, kv, tensors, blob, align=32, n_tensors=None, n_kv=None):
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors) if n_tensors is None else n_tensors,
                                         len(kv) if n_kv is None else n_kv))
    for key, t, v in kv:
        out += struct.pack("<Q", len(key)) + key + struct.pack("<I", t) + write_value(t, v)
    for name, dims, ttype, offset in tensors:
        out += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ttype, offset)
    pad = (len(out) + align - 1) // align * align - len(out)
    out += b"\0" * pad + blob
    with open(path, "wb") as f:
        f.write(out)


def gguf_mutations(model):
    """Yields (name, kv, tensors, blob, extra) with one thing wrong each."""
    kv, tensors, blob = read_gguf(model)
    nan, inf = float("nan"), float("inf")
    int_values = [(T_U32, 0), (T_U32, 1), (T_U32, 3), (T_U32, 2**31), (T_U32, 2**32 - 1),
                  (T_U64, 2**31), (T_U64, 10**7), (T_U64, 2**63), (T_U64, 2**64 - 1),
                  (T_I32, -1), (T_I64, -2**63), (T_F32, 8.0), (T_STR, b"8"), (T_BOOL, True),
                  (T_ARR, (T_U32, [8]))]
    float_values = [(T_F32, nan), (T_F32, inf), (T_F32, -inf), (T_F32, 0.0), (T_F32, -1.0),
                    (T_F32, 1e38), (T_F32, 1e-45), (T_F64, 1e308), (T_U32, 1), (T_STR, b"1e-5")]
    for i, (key, t, v) in enumerate(kv):
        k = key.decode()
        if k.startswith("tokenizer.ggml.") and t == T_ARR:
            et, items = v
            for label, new in [("empty", []), ("one short", items[:-1]), ("one long", items + items[-1:]),
                               ("halved", items[:len(items) // 2])]:
                m = [list(x) for x in kv]
                m[i][2] = (et, new)
                yield f"{k} {label}", m, tensors, blob
            m = [list(x) for x in kv]
            m[i][2] = (T_U32, [0] * len(items))
            yield f"{k} as u32 array", m, tensors, blob
            continue
        values = float_values if t in (T_F32, T_F64) else int_values if t in SCALAR else [
            (T_STR, b""), (T_STR, b"\xff\xfe"), (T_STR, b"x" * 10000), (T_U32, 7)]
        if k.startswith("tokenizer.ggml.") and t in (T_U32, T_I32):
            values = values + [(T_U32, 511), (T_U32, 512), (T_I32, -2)]
        for nt, nv in values:
            m = [list(x) for x in kv]
            m[i][1], m[i][2] = nt, nv
            yield f"{k} = {nv!r:.40} ({nt})", m, tensors, blob
        m = [list(x) for x in kv if x[0] != key]
        yield f"{k} removed", m, tensors, blob
    for label, extra in [("general.alignment = 2^31", (T_U32, 2**31)),
                         ("general.alignment = 3", (T_U32, 3)),
                         ("general.alignment = 0", (T_U32, 0)),
                         ("general.alignment = 2^20", (T_U32, 2**20))]:
        yield label, kv + [[b"general.alignment", extra[0], extra[1]]], tensors, blob
    for j, (name, dims, ttype, offset) in enumerate(tensors):
        if j % 6 != 0 and j != len(tensors) - 1:
            continue  # a sample of the tensors keeps the run short
        n = name.decode()
        for label, new in [("dims +1", [dims[0] + 1] + dims[1:]), ("dims 0", [0] + dims[1:]),
                           ("dims 2^40", [2**40] + dims[1:]), ("one dim", dims[:1]),
                           ("extra dim", dims + [1])]:
            t2 = [list(x) for x in tensors]
            t2[j][1] = new
            yield f"tensor {n} {label}", kv, t2, blob
        for label, tt in [("type q4_K", 12), ("type 99", 99), ("type f16", 1), ("type q8_0", 8)]:
            t2 = [list(x) for x in tensors]
            t2[j][2] = tt
            yield f"tensor {n} {label}", kv, t2, blob
        for label, off in [("offset +32", offset + 32), ("offset 2^63", 2**63), ("offset odd", offset + 1)]:
            t2 = [list(x) for x in tensors]
            t2[j][3] = off
            yield f"tensor {n} {label}", kv, t2, blob
        t2 = [list(x) for x in tensors if x[0] != name]
        yield f"tensor {n} removed", kv, t2, blob
    # Non-finite weights: the first float of the output norm and of a whole matrix.
    for label, value in [("NaN", nan), ("Inf", inf)]:
        for name, dims, ttype, offset in tensors:
            if name in (b"output_norm.weight", b"blk.0.attn_q.weight"):
                b2 = bytearray(blob)
                struct.pack_into("<f", b2, offset, value)
                yield f"{label} in {name.decode()}", kv, tensors, bytes(b2)
    yield "blob cut in half", kv, tensors, blob[: len(blob) // 2]


# ------------------------------------------------------------------------------------------------
# The cases

EDGE_INTS = ["-1", "0", "1", "2147483648", "4294967296", "9223372036854775807", "9223372036854775808",
             "18446744073709551615", "18446744073709551616", "-9223372036854775809", "1e3", "1.5",
             "0x10", "+5", " 5", "abc", "", "nan", "inf", "-inf", "1099511627776"]

ALIASES = [("-n", "--n-predict"), ("-t", "--threads"), ("-b", "--batch"), ("-s", "--seed"),
           ("-c", "--ctx-size")]


# Options whose large values ask for a run that lasts (generation lengths).
ENDLESS_OPTS = {"-n", "--n-predict", "--max-reply", "--tokens"}


# subcommand -> (base args, numeric options). Base args make a run short; each option is tried
# with every edge value. Options that only make sense together are given their partners.
def flag_cases(tmp):
    m = ["-m", MODEL]
    run = m + ["-p", "Once", "-n", "4", "-t", "1"]
    common_cache = ["--sinks", "--window", "-b", "--batch"]
    sampling = ["--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n",
                "--seed", "-s"]
    table = {
        "run": (run, ["-n", "-t", "--threads"] + common_cache + sampling),
        "run-dense": (run + ["--policy", "dense"], ["-c", "--ctx-size"]),
        "ppl": (m + ["-f", TEXT, "--tokens", "300", "-t", "1"],
                ["--tokens", "--cache", "--segment", "-t"] + common_cache),
        "bench": (m + ["--tokens", "2000", "-t", "1"], ["--tokens", "--report-every", "-t"] +
                  common_cache + sampling),
        "inspect": (m + ["attention", "-f", TEXT, "--tokens", "300", "-t", "1"], ["--tokens", "-k", "-t"]),
        "chat": (m + ["--max-reply", "8", "-t", "1"], ["--max-reply", "-t"] + common_cache + sampling),
        "tokenize": (m + ["-p", "hi"], []),
        "quantize": ([MODEL, os.path.join(tmp, "q.gguf"), "--type", "q8_0"], []),
    }
    for sub, (base, opts) in table.items():
        cmd = sub.split("-")[0]
        args0 = [cmd] + base
        if cmd == "inspect":
            args0 = ["inspect"] + base[2:3] + base[:2] + base[3:]
        for opt in opts:
            aliases = next((g for g in ALIASES if opt in g), (opt,))
            args1 = list(args0)
            for alias in aliases:  # the option under test replaces the base's value for it
                while alias in args1:
                    i = args1.index(alias)
                    del args1[i:i + 2]
            for v in EDGE_INTS:
                stdin = b"hello\n" if cmd == "chat" else b""
                endless = opt in ENDLESS_OPTS and v.lstrip("-").isdigit() and (
                    v in ("-1", "0") or int(v) > 10**6)
                yield Case(f"{sub} {opt} {v!r}", args1 + [opt, v], stdin=stdin, endless=endless)
    # Conflicts and empties.
    for args in (["run"] + m + ["-p", "x", "-f", TEXT], ["run"] + m + ["-p", ""],
                 ["chat"] + m + ["--stop", ""], ["chat"] + m + ["--session", ""],
                 ["run"] + m + ["--policy", "window", "--sinks", "2"],
                 ["run"] + m + ["--policy", "bogus"], ["run"] + m + ["--kv-type", "q4_0"],
                 ["run"] + m + ["--sinks", "-4", "--window", "4"],
                 ["run"] + m + ["--sinks", "18446744073709551612", "--window", "4"],
                 ["run", "-m", "/nonexistent.gguf"], ["run", "-m", "/dev/null"], ["run", "-m", "/"],
                 ["info", "-m", "/proc/self/status"], ["tokenize", "-m", MODEL, "-f", "/"],
                 ["run"] + m + ["-f", "/dev/null"], ["bogus"], [], ["--version"]):
        yield Case(f"args {' '.join(args)[-80:]}", args, stdin=b"hi\n")


def gguf_cases(tmp):
    for i, (name, kv, tensors, blob) in enumerate(gguf_mutations(MODEL)):
        path = os.path.join(tmp, f"mut{i}.gguf")
        align = 32
        for key, t, v in kv:
            if key == b"general.alignment" and t in SCALAR and isinstance(v, int) and 0 < v <= 1 << 20 and (v & (v - 1)) == 0:
                align = v
        write_gguf(path, kv, tensors, blob, align=align)
        yield Case(f"gguf [{name}] info", ["info", "-m", path])
        yield Case(f"gguf [{name}] run", ["run", "-m", path, "-p", "Once", "-n", "8", "-t", "1"])
        yield Case(f"gguf [{name}] tokenize", ["tokenize", "-m", path, "-p", "Hello world"])
        yield Case(f"gguf [{name}] quantize", ["quantize", path, os.path.join(tmp, f"mutq{i}.gguf"),
                                                "--type", "q8_0"])


def text_cases(tmp):
    m = ["-m", MODEL, "-t", "1"]
    texts = {
        "invalid utf8": b"hello \xff\xfe world",
        "overlong": b"\xc0\xaf", "surrogate": b"\xed\xa0\x80", "truncated": b"abc\xe2\x82",
        "nul bytes": b"a\0b\0c", "bom": b"\xef\xbb\xbfhello", "only newlines": b"\n" * 1000,
        "controls": bytes(range(1, 32)) * 10, "special text": b"<s></s><unk>" * 100,
        "long word": b"a" * 200000, "mixed scripts": "héllo wörld 日本語 🤖 \u202e".encode(),
    }
    for name, data in texts.items():
        path = os.path.join(tmp, f"text_{name.replace(' ', '_')}.txt")
        with open(path, "wb") as f:
            f.write(data)
        yield Case(f"text [{name}] run -f", ["run"] + m + ["-f", path, "-n", "4"])
        yield Case(f"text [{name}] tokenize -f", ["tokenize", "-m", MODEL, "-f", path])
        yield Case(f"text [{name}] ppl", ["ppl"] + m + ["-f", path])
        yield Case(f"text [{name}] chat stdin", ["chat"] + m + ["--max-reply", "4"],
                   stdin=data + b"\nafter\n",
                   check=lambda rc, out, err: None if b"ASSISTANT" in out else "no reply at all")
    # One bad line must not end a chat: the line after it is answered.
    yield Case("chat goes on after an invalid line", ["chat"] + m + ["--max-reply", "4"],
               stdin=b"hello\n\xff\xfe\nafter\n",
               check=lambda rc, out, err: None if out.count(b"ASSISTANT") >= 2 and b"after" in out
               else f"'after' not answered: {out[-200:]!r}")


def output_cases(tmp):
    m = ["-m", MODEL, "-t", "1"]
    def failed(rc, out, err):
        return None if rc != 0 and "error" in err.lower() else f"exit {rc}, expected an error"
    for args in (["run"] + m + ["-p", "Once", "-n", "16"], ["tokenize", "-m", MODEL, "-p", "hi"],
                 ["info", "-m", MODEL]):
        yield Case(f"stdout /dev/full: {args[0]}", f"$CLI {' '.join(args)} > /dev/full", shell=True,
                   check=lambda rc, out, err: None if rc != 0 and "error" in err.lower() else
                   f"exit {rc} writing to /dev/full")
    yield Case("chat stdout /dev/full", f"echo hi | $CLI chat {' '.join(m)} --max-reply 4 > /dev/full",
               shell=True, check=lambda rc, out, err: None if rc != 0 else "exit 0 on /dev/full")
    yield Case("closed pipe, SIGPIPE ignored",
               f"trap '' PIPE; $CLI run {' '.join(m)} -n -1 --ignore-eos | head -c 100 >/dev/null; "
               "echo ${PIPESTATUS[0]}", shell=True, timeout=20,
               check=lambda rc, out, err: None if out.strip() not in (b"0", b"") else
               f"exit {out.strip()!r} on a closed pipe")
    for flag in ("--csv", "--summary"):
        yield Case(f"ppl {flag} /dev/full", ["ppl"] + m + ["-f", TEXT, "--tokens", "300", flag, "/dev/full"],
                   check=failed)
        yield Case(f"ppl {flag} into a directory", ["ppl"] + m + ["-f", TEXT, "--tokens", "300", flag, tmp],
                   check=failed)
        yield Case(f"ppl {flag} missing dir", ["ppl"] + m + ["-f", TEXT, "--tokens", "300", flag,
                                                          "/nonexistent/x.csv"], check=failed)
    yield Case("bench --json /dev/full", ["bench"] + m + ["--tokens", "2000", "--json", "/dev/full"],
               check=failed)

    def dev_full_intact(rc, out, err):
        st = os.stat("/dev/full")
        if not stat.S_ISCHR(st.st_mode):
            return "/dev/full is no longer a character device"
        return None if rc != 0 else "quantize to /dev/full exited 0"
    yield Case("quantize to /dev/full", ["quantize", MODEL, "/dev/full", "--type", "q8_0"],
               check=dev_full_intact)
    fifo = os.path.join(tmp, "fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    yield Case("quantize to a FIFO", ["quantize", MODEL, fifo, "--type", "q8_0"], timeout=10,
               check=lambda rc, out, err: None if rc != 0 else "quantize to a FIFO exited 0")
    yield Case("chat --session FIFO", ["chat"] + m + ["--session", fifo, "--max-reply", "4"],
               stdin=b"hi\n", timeout=10)
    yield Case("run -m FIFO", ["run", "-m", fifo, "-n", "4"], timeout=10)
    yield Case("chat --session dir", ["chat"] + m + ["--session", tmp], stdin=b"hi\n")
    yield Case("chat --session long name", ["chat"] + m + ["--session", os.path.join(tmp, "x" * 300)],
               stdin=b"hi\n")
    loop = os.path.join(tmp, "loop")
    if not os.path.lexists(loop):
        os.symlink(loop, loop)
    yield Case("chat --session symlink loop", ["chat"] + m + ["--session", loop], stdin=b"hi\n")
    yield Case("chat --session unwritable dir", ["chat"] + m + ["--session", "/proc/x.session"],
               stdin=b"hi\n", check=lambda rc, out, err: None if rc != 0 and b"ASSISTANT" not in out
               else "the unwritable session path was not reported before the first reply")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=os.path.join(ROOT, "build/release/apps/streamingllm/streamingllm"))
    ap.add_argument("--only", default="flags,gguf,text,output")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, kill_live_groups)
    signal.signal(signal.SIGINT, kill_live_groups)
    with tempfile.TemporaryDirectory(prefix="sllm_probe_") as tmp:
        return run_all(a, tmp)


def run_all(a, tmp):
    groups = {"flags": flag_cases, "gguf": gguf_cases, "text": text_cases, "output": output_cases}
    cases = [c for g in a.only.split(",") for c in groups[g](tmp)]
    n_bad = 0
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        for case, (ok, msg) in zip(cases, pool.map(lambda c: run_case(a.cli, c), cases)):
            if not ok:
                n_bad += 1
                print(f"FAIL {case.name}: {msg}", flush=True)
            elif a.verbose:
                print(f"ok   {case.name}: {msg}", flush=True)
    print(f"{len(cases) - n_bad} passed, {n_bad} failed")
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
