#!/usr/bin/env python3
"""Writes tests/data/quant_goldens.json: llama.cpp's quantized bytes and dequantized floats
(as sha256 digests, plus a few values) for every block type streamingllm supports.

Needs the npm peer (peer/node_modules -> node-llama-cpp 3.21.1, @node-llama-cpp/linux-x64): its
prebuilt libggml-base.so exports ggml's reference codecs, called here through ctypes:
  - quantize cases: ggml_quantize_chunk(type, src, dst, 0, n_rows, n_per_row, NULL), what
    llama-quantize runs without an importance matrix (q8_K, never a file type, through
    quantize_row_q8_K_ref); then dequantize_row_<type> of those bytes;
  - dequantize cases: random bytes (every bit pattern, f16 / f32 scales made finite) through
    dequantize_row_<type>.

Inputs come from SplitMix64 (seeded per case; the seed is in the file), mapped to floats in
double precision with exact or correctly rounded operations only, then rounded to f32, so
tests/quant_types_test.cc regenerates them bit for bit:
  next():   state += 0x9E3779B97F4A7C15; z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            return z ^ (z >> 31)                                   (all mod 2^64)
  unit():   (next() >> 11) * 2^-53                                 in [0, 1)
  normal:   (unit() + unit() + unit() + unit() - 2) * 1.7          (Irwin-Hall, sums left to right)
  uniform:  unit() * 2 - 1
  zeros:    0
  outlier:  normal * 0.05 for every element, then per row k = next() % n_per_row,
            x[k] = 40 if k is even else -40
  tiny:     normal * 1e-7 (f16 scales become subnormal)
  huge:     uniform * 60000 (near the f16 limit 65504)
  bytes:    random block bytes: next() gives 8 bytes little-endian, in order; then each f16
            scale field with an all-ones exponent (h & 0x7C00 == 0x7C00) gets h & ~0x4000, each
            f32 field (q8_K's d) with an all-ones exponent gets bit 30 cleared.
Rows are generated one after the other, element by element.

Usage: python3 scripts/peer_quant_goldens.py [--lib PATH] [--out tests/data/quant_goldens.json]
"""
import argparse
import ctypes
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LIB = os.path.join(ROOT, "peer/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/"
                           "libggml-base.so")

# name: (ggml id, block elems, block bytes, f16 field offsets, f32 field offsets)
TYPES = {
    "q4_0": (2, 32, 18, [0], []),
    "q4_1": (3, 32, 20, [0, 2], []),
    "q5_0": (6, 32, 22, [0], []),
    "q5_1": (7, 32, 24, [0, 2], []),
    "q8_0": (8, 32, 34, [0], []),
    "q2_K": (10, 256, 84, [80, 82], []),
    "q3_K": (11, 256, 110, [108], []),
    "q4_K": (12, 256, 144, [0, 2], []),
    "q5_K": (13, 256, 176, [0, 2], []),
    "q6_K": (14, 256, 210, [208], []),
    "q8_K": (15, 256, 292, [], [0]),
    "iq4_nl": (20, 32, 18, [0], []),
    "iq4_xs": (23, 256, 136, [0], []),
    "mxfp4": (39, 32, 17, [], []),
}
DISTS = ["normal", "uniform", "zeros", "outlier", "tiny", "huge"]
MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def unit(self):
        return (self.next() >> 11) * 2.0**-53


def gen_rows(seed, dist, n_per_row, n_rows):
    rng = SplitMix64(seed)
    out = []
    for _ in range(n_rows):
        row = []
        for _ in range(n_per_row):
            if dist in ("normal", "outlier", "tiny"):
                v = (rng.unit() + rng.unit() + rng.unit() + rng.unit() - 2.0) * 1.7
                if dist == "outlier":
                    v *= 0.05
                elif dist == "tiny":
                    v *= 1e-7
            elif dist in ("uniform", "huge"):
                v = rng.unit() * 2.0 - 1.0
                if dist == "huge":
                    v *= 60000.0
            else:
                v = 0.0
            row.append(v)
        if dist == "outlier":
            k = rng.next() % n_per_row
            row[k] = 40.0 if k % 2 == 0 else -40.0
        out.extend(row)
    # Round to f32 as C++'s static_cast<float>(double) does (to nearest even).
    return struct.pack("<%df" % len(out), *out)


def gen_bytes(seed, name, n_blocks):
    _, _, bb, f16s, f32s = TYPES[name]
    rng = SplitMix64(seed)
    n = n_blocks * bb
    raw = bytearray()
    while len(raw) < n:
        raw += struct.pack("<Q", rng.next())
    raw = raw[:n]
    for b in range(n_blocks):
        for off in f16s:
            p = b * bb + off
            h = raw[p] | (raw[p + 1] << 8)
            if h & 0x7C00 == 0x7C00:
                h &= ~0x4000
            raw[p], raw[p + 1] = h & 0xFF, h >> 8
        for off in f32s:
            p = b * bb + off
            (u,) = struct.unpack_from("<I", raw, p)
            if u & 0x7F800000 == 0x7F800000:
                u &= ~0x40000000
            struct.pack_into("<I", raw, p, u)
    return bytes(raw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", default=DEFAULT_LIB)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/data/quant_goldens.json"))
    args = ap.parse_args()
    lib = ctypes.CDLL(args.lib)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_void_p]

    def dequantize(name, data, n):
        fn = getattr(lib, "dequantize_row_" + name)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn.restype = None
        src = ctypes.create_string_buffer(data, len(data))
        dst = ctypes.create_string_buffer(4 * n)
        fn(src, dst, n)
        return dst.raw

    def quantize(name, floats, n_per_row, n_rows):
        gid, be, bb, _, _ = TYPES[name]
        src = ctypes.create_string_buffer(floats, len(floats))
        size = n_rows * n_per_row // be * bb
        dst = ctypes.create_string_buffer(size)
        if name == "q8_K":
            fn = lib.quantize_row_q8_K_ref
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            fn.restype = None
            fn(src, dst, n_rows * n_per_row)
        else:
            got = lib.ggml_quantize_chunk(gid, src, dst, 0, n_rows, n_per_row, None)
            assert got == size, (name, got, size)
        return dst.raw

    def summary(floats):
        n = len(floats) // 4
        vals = struct.unpack("<%df" % min(n, 4), floats[: 4 * min(n, 4)])
        return [struct.unpack("<I", struct.pack("<f", v))[0] for v in vals]

    cases = []
    seed = 1
    for name, (_, be, _, _, _) in TYPES.items():
        shapes = [(512, 3, d) for d in DISTS]
        shapes += [(256, 1, "normal"), (4096, 2, "normal")]
        if be == 32:
            shapes += [(96, 5, "normal"), (32, 7, "outlier")]
        for n_per_row, n_rows, dist in shapes:
            if name == "q8_K" and dist == "zeros":
                continue  # ggml leaves an all-zero block's bsums unwritten
            seed += 1
            floats = gen_rows(seed, dist, n_per_row, n_rows)
            q = quantize(name, floats, n_per_row, n_rows)
            deq = dequantize(name, q, n_per_row * n_rows)
            cases.append({"type": name, "kind": "quantize", "dist": dist, "n_per_row": n_per_row,
                          "n_rows": n_rows, "seed": seed,
                          "bytes_sha256": hashlib.sha256(q).hexdigest(),
                          "floats_sha256": hashlib.sha256(deq).hexdigest(),
                          "first_bits": summary(deq)})
        for n_blocks in (1, 7, 64):
            seed += 1
            data = gen_bytes(seed, name, n_blocks)
            deq = dequantize(name, data, n_blocks * be)
            cases.append({"type": name, "kind": "dequantize", "n_blocks": n_blocks, "seed": seed,
                          "bytes_sha256": hashlib.sha256(data).hexdigest(),
                          "floats_sha256": hashlib.sha256(deq).hexdigest(),
                          "first_bits": summary(deq)})
    with open(args.out, "w") as f:
        f.write('{"generator": "scripts/peer_quant_goldens.py (SplitMix64 inputs, see its '
                'docstring)",\n "peer": "node-llama-cpp 3.21.1 libggml-base.so",\n "cases": [\n')
        f.write(",\n".join("  " + json.dumps(c, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")
    print("wrote %d cases to %s" % (len(cases), args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
