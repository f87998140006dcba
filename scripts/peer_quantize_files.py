#!/usr/bin/env python3
"""Compares whole files: `streamingllm quantize` against llama.cpp's own llama_model_quantize (the
peer's libllama, node-llama-cpp 3.21.1, called through ctypes) on the same f32 model. For every
tensor, the type and the sha256 of the data must be equal. Single types are compared with
llama.cpp's `--pure` (every matrix the type, before the fallbacks for rows the block does not
divide; our q4_0 keeps output.weight at q8_0, so that one tensor is skipped there); Q4_K_M and
Q5_K_M with llama.cpp's mixes.

Models: stories260K (rows of 64 and 172: every fallback) and an 8-layer 256-wide random llama
made with `streamingllm make-model` (every K-quant, the mixes' per-layer choices).

With --write-goldens it writes, per model and type, a digest of llama.cpp's file to
tests/data/quant_peer_files.json, which tests/quant_peer_greedy_test.cc compares with the files
quantize writes: sha256 over the tensors sorted by name, each as
"<name>\\0<ggml type>\\0<sha256 hex of its data>\\n" (q4_0 without output.weight).

  scripts/peer_quantize_files.py [--bin build/release/apps/streamingllm/streamingllm]
                                 [--write-goldens]
"""
import argparse
import ctypes
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBDIR = os.path.join(ROOT, "peer/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64")
STORIES = os.path.join(os.path.dirname(ROOT), "shared", "models", "stories260K", "stories260K.gguf")

# our --type -> (llama_ftype, pure)
TYPES = {"q8_0": (7, True), "q4_0": (2, True), "q4_1": (3, True), "q5_0": (8, True),
         "q5_1": (9, True), "q2_K": (10, True), "q3_K": (11, True), "q4_K": (14, True),
         "q5_K": (16, True), "q6_K": (18, True), "iq4_nl": (25, True), "iq4_xs": (30, True),
         "mxfp4": (38, True), "Q4_K_M": (15, False), "Q5_K_M": (17, False)}


class QuantizeParams(ctypes.Structure):  # llama.h llama_model_quantize_params
    _fields_ = [("nthread", ctypes.c_int32), ("ftype", ctypes.c_int32),
                ("output_tensor_type", ctypes.c_int32), ("token_embedding_type", ctypes.c_int32),
                ("allow_requantize", ctypes.c_bool), ("quantize_output_tensor", ctypes.c_bool),
                ("only_copy", ctypes.c_bool), ("pure", ctypes.c_bool), ("keep_split", ctypes.c_bool),
                ("dry_run", ctypes.c_bool), ("imatrix", ctypes.c_void_p),
                ("kv_overrides", ctypes.c_void_p), ("tt_overrides", ctypes.c_void_p),
                ("prune_layers", ctypes.c_void_p), ("max_buf_size", ctypes.c_size_t)]


def read_tensors(path):
    """{name: (ggml type, sha256 of its data)} of a GGUF file."""
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode()
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}

    def value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        et, n = take("I"), take("Q")
        return [value(et) for _ in range(n)]

    assert data[:4] == b"GGUF"
    pos = 4
    take("I")
    n_tensors, n_kv = take("Q"), take("Q")
    alignment = 32
    for _ in range(n_kv):
        key = string()
        v = value(take("I"))
        if key == "general.alignment":
            alignment = v
    infos = []
    for _ in range(n_tensors):
        name = string()
        dims = [take("Q") for _ in range(take("I"))]
        infos.append((name, dims, take("I"), take("Q")))
    base = (pos + alignment - 1) // alignment * alignment
    sizes = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
             8: (32, 34), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
             14: (256, 210), 20: (32, 18), 23: (256, 136), 39: (32, 17)}
    out = {}
    for name, dims, t, off in infos:
        n = 1
        for d in dims:
            n *= d
        be, bb = sizes[t]
        blob = data[base + off: base + off + n // be * bb]
        out[name] = (t, hashlib.sha256(blob).hexdigest())
    return out


def digest(tensors, skip):
    h = hashlib.sha256()
    for name in sorted(tensors):
        if name in skip:
            continue
        t, data_hash = tensors[name]
        h.update(f"{name}\0{t}\0{data_hash}\n".encode())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/release/apps/streamingllm/streamingllm"))
    ap.add_argument("--write-goldens", action="store_true")
    args = ap.parse_args()
    goldens = {}
    for lib in ("libggml-base.so", "libggml.v0.4.0.so"):
        ctypes.CDLL(os.path.join(LIBDIR, lib), mode=ctypes.RTLD_GLOBAL)
    llama = ctypes.CDLL(os.path.join(LIBDIR, "libllama.v0.4.0.so"), mode=ctypes.RTLD_GLOBAL)
    llama.llama_model_quantize_default_params.restype = QuantizeParams
    llama.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                           ctypes.POINTER(QuantizeParams)]
    llama.llama_model_quantize.restype = ctypes.c_uint32
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "llama8.gguf")
        subprocess.run([args.bin, "make-model", "--vocab", STORIES, "-o", big, "--n-embd", "256",
                        "--n-layer", "8", "--n-head", "4", "--n-head-kv", "2", "--n-ff", "512",
                        "--seed", "12"], check=True, capture_output=True)
        for model in (STORIES, big):
            for t, (ftype, pure) in TYPES.items():
                ours = os.path.join(tmp, "ours.gguf")
                theirs = os.path.join(tmp, "theirs.gguf")
                subprocess.run([args.bin, "quantize", model, ours, "--type", t], check=True,
                               capture_output=True)
                p = llama.llama_model_quantize_default_params()
                p.ftype, p.pure, p.nthread = ftype, pure, 2
                rc = llama.llama_model_quantize(model.encode(), theirs.encode(), ctypes.byref(p))
                assert rc == 0, (t, rc)
                a, b = read_tensors(ours), read_tensors(theirs)
                skip = {"output.weight"} if t == "q4_0" else set()
                differ = sorted(n for n in b if n not in skip and a.get(n) != b[n])
                missing = sorted(set(a) ^ set(b))
                same = len(b) - len(differ) - len(skip & set(b))
                print(f"{os.path.basename(model):18s} {t:7s} tensors equal (type and bytes): "
                      f"{same}/{len(b) - len(skip & set(b))}"
                      + (f"; DIFFER: {differ[:4]}" if differ else "")
                      + (f"; names differ: {missing}" if missing else ""))
                ok &= not differ and not missing
                key = "stories260K" if model == STORIES else "llama8"
                goldens.setdefault(key, {})[t] = digest(b, skip)
    if args.write_goldens:
        out = os.path.join(ROOT, "tests", "data", "quant_peer_files.json")
        with open(out, "w") as f:
            json.dump(goldens, f, indent=1)
            f.write("\n")
        print("wrote", out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
