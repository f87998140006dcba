#!/usr/bin/env python3
"""Tokenize long texts with llama.cpp (peer/, node-llama-cpp 3.21.1) and with streamingllm, compare.

For every vocabulary in ../shared/data/vocab/ (bert-bge aside: WordPiece is out of scope) and every
text (the books in ../shared/data/text/ and tests/data/texts/*.txt), whole and, for texts over
--prefix-bytes, their first --prefix-bytes (the subset the sanitizer build checks), both sides
tokenize without BOS/EOS and without parsing special tokens. Prints one row per (vocabulary,
text): bytes, tokens, and "equal" or the first differing index with the ids around it.

With --write-goldens, writes tests/data/tokenizer_goldens/VOCAB.txt from llama.cpp's ids (whatever
ours gives), for tests/tokenizer_peer_golden_test.cc. Needs node and `cd peer && npm ci`; ours is
build/release/bench/tokenizer_tool (public API only). Not part of the default test suite.

    python3 scripts/peer_tokenize.py [--vocab NAME]... [--text SUBSTRING]... [--file PATH]...
        [--write-goldens]
"""
import argparse
import glob
import hashlib
import json
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
BLOCK = 4096  # ids per block digest in the goldens
FIRST = 64  # ids written out verbatim
SKIP_VOCABS = {"bert-bge"}


def vocabularies(only):
    out = []
    for path in sorted(glob.glob(os.path.join(SHARED, "data", "vocab", "ggml-vocab-*.gguf"))):
        name = os.path.basename(path)[len("ggml-vocab-"):-len(".gguf")]
        if name in SKIP_VOCABS or (only and name not in only):
            continue
        out.append((name, path))
    return out


def texts(only, extra):
    """(root, relative path, absolute path): root 'shared' is ../shared, 'source' the project,
    'extra' a file named with --file (compared, never written to the goldens)."""
    out = [("shared", os.path.relpath(p, SHARED), p)
           for p in sorted(glob.glob(os.path.join(SHARED, "data", "text", "*.txt")))]
    out += [("source", os.path.relpath(p, ROOT), p)
            for p in sorted(glob.glob(os.path.join(ROOT, "tests", "data", "texts", "*.txt")))]
    out = [t for t in out if not only or any(s in t[1] for s in only)]
    return out + [("extra", p, os.path.abspath(p)) for p in extra]


def prefix(data, max_bytes):
    """The first max_bytes bytes backed off to a UTF-8 character boundary (0: all)."""
    if max_bytes == 0 or len(data) <= max_bytes:
        return data
    n = max_bytes
    while n > 0 and (data[n] & 0xC0) == 0x80:
        n -= 1
    return data[:n]


def run_json_lines(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    rows = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            rows[row["file"]] = row
    return rows, r


def tokenize_all(side, vocab_path, files, max_bytes, a):
    """{file: ids list or error string} from one side, one process for all files."""
    if side == "peer":
        cmd = ["node", os.path.join(a.peer_dir, "tokenize.mjs"), vocab_path] + files
        cwd = a.peer_dir
    else:
        cmd = [a.tool, "ids", vocab_path] + files
        cwd = None
    if max_bytes:
        cmd += ["--max-bytes", str(max_bytes)]
    rows, r = run_json_lines(cmd, cwd)
    out = {}
    for f in files:
        row = rows.get(f)
        if row is None:
            err = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
            out[f] = f"error: {err}"
        elif "error" in row:
            out[f] = f"error: {row['error']}"
        else:
            out[f] = row["ids"]
    return out


def id_bytes(ids):
    return struct.pack(f"<{len(ids)}I", *ids)


def golden_case(root, rel, max_bytes, text, ids):
    blocks = [hashlib.sha256(id_bytes(ids[i:i + BLOCK])).hexdigest()[:16]
              for i in range(0, len(ids), BLOCK)]
    return "\n".join([
        f"case {root} {rel} {max_bytes}",
        f"text_bytes {len(text)}",
        f"text_sha256 {hashlib.sha256(text).hexdigest()[:16]}",
        f"count {len(ids)}",
        f"sha256 {hashlib.sha256(id_bytes(ids)).hexdigest()}",
        "blocks " + " ".join(blocks),
        "first " + " ".join(str(i) for i in ids[:FIRST]),
        "end",
    ])


def compare(peer, ours):
    if isinstance(peer, str):
        return f"PEER {peer}"
    if isinstance(ours, str):
        return f"OURS {ours}"
    if peer == ours:
        return "equal"
    i = next((k for k in range(min(len(peer), len(ours))) if peer[k] != ours[k]),
             min(len(peer), len(ours)))
    lo = max(0, i - 4)
    return (f"DIFF at {i} (block {i // BLOCK}): llama.cpp {peer[lo:i + 6]} "
            f"ours {ours[lo:i + 6]} (from index {lo})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", action="append", default=[], help="only this vocabulary (repeatable)")
    ap.add_argument("--text", action="append", default=[], help="only texts whose path has this")
    ap.add_argument("--file", action="append", default=[], help="also compare on this file")
    ap.add_argument("--write-goldens", action="store_true")
    ap.add_argument("--goldens-dir", default=os.path.join(ROOT, "tests", "data", "tokenizer_goldens"))
    ap.add_argument("--prefix-bytes", type=int, default=65536)
    ap.add_argument("--peer-dir", default=os.path.join(ROOT, "peer"))
    ap.add_argument("--tool", default=os.path.join(ROOT, "build", "release", "bench", "tokenizer_tool"))
    ap.add_argument("--no-ours", action="store_true", help="llama.cpp only (goldens)")
    a = ap.parse_args()
    if not os.path.isdir(os.path.join(a.peer_dir, "node_modules", "node-llama-cpp")):
        sys.exit(f"peer_tokenize.py: no node-llama-cpp in {a.peer_dir}: run `cd peer && npm ci`")
    if not a.no_ours and not os.access(a.tool, os.X_OK):
        sys.exit(f"peer_tokenize.py: {a.tool} missing: build the tokenizer_tool target (or --no-ours)")
    vocabs, txts = vocabularies(set(a.vocab)), texts(a.text, a.file)
    if a.write_goldens and (a.vocab or a.text or a.file):
        sys.exit("peer_tokenize.py: --write-goldens writes every (vocabulary, text): no filters")
    data = {t[2]: open(t[2], "rb").read() for t in txts}
    long_files = [t[2] for t in txts if len(data[t[2]]) > a.prefix_bytes]
    print(f"{'vocab':15s} {'text':42s} {'bytes':>8s} {'llama.cpp':>9s} {'ours':>9s}  result")
    failures = 0
    for name, vpath in vocabs:
        runs = [(0, [t[2] for t in txts]), (a.prefix_bytes, long_files)]
        cases = []
        for max_bytes, files in runs:
            if not files:
                continue
            peer = tokenize_all("peer", vpath, files, max_bytes, a)
            ours = ({f: "error: not run" for f in files} if a.no_ours else
                    tokenize_all("ours", vpath, files, max_bytes, a))
            for root, rel, path in txts:
                if path not in files:
                    continue
                text = prefix(data[path], max_bytes)
                result = compare(peer[path], ours[path]) if not a.no_ours else "-"
                failures += result != "equal" and not a.no_ours
                label = rel + (f" [:{len(text)}]" if max_bytes else "")
                n = lambda x: str(len(x)) if isinstance(x, list) else "-"
                print(f"{name:15s} {label:42s} {len(text):8d} {n(peer[path]):>9s} "
                      f"{n(ours[path]):>9s}  {result}", flush=True)
                if isinstance(peer[path], str):
                    sys.exit(f"peer_tokenize.py: llama.cpp failed on {name} {rel}: {peer[path]}")
                cases.append(golden_case(root, rel, max_bytes, text, peer[path]))
        if a.write_goldens:
            os.makedirs(a.goldens_dir, exist_ok=True)
            with open(os.path.join(a.goldens_dir, f"{name}.txt"), "w") as f:
                f.write(f"# llama.cpp's ids (node-llama-cpp 3.21.1, add_special=false, parse_special=false)"
                        f" for ggml-vocab-{name}.gguf,\n# written by scripts/peer_tokenize.py"
                        f" --write-goldens; blocks of {BLOCK} ids; do not edit.\n")
                f.write("\n".join(cases) + "\n")
    if not a.no_ours:
        print(f"{failures} of the compared (vocabulary, text) pairs differ or failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
