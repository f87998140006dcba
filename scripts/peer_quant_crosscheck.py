#!/usr/bin/env python3
"""Cross-checks quantized files with llama.cpp (peer/greedy.mjs: node-llama-cpp 3.21.1, CPU).

`streamingllm quantize` writes a random-weight llama (rows of 256 and 512, so the K-quants apply
everywhere; 8 layers, so the mixes' per-layer choices show) in each type and mix, and decodes it
back to f32 (`quantize --type f32`: our scalar decoder). For each file it runs 64 greedy tokens with
`streamingllm run` (dense cache, one thread) and with llama.cpp on both files, and prints:
  - same weights: our ids on the quantized file vs llama.cpp's on the decoded f32 file (must be
    equal; top-5 log-probability gap over 8 steps ~1e-5, the f32 summation order);
  - quantized file in llama.cpp: it loads; where its greedy ids first differ from ours, and the
    step-0 top-5 gap, next to llama.cpp's own gap between its quantized and decoded-f32 runs. That
    gap is llama.cpp rounding the activations (to q8_0 / q8_K / q8_1 for its integer dot products,
    to f16 / bf16 for f16 / bf16 weights): the same size as ours, so the files read the same and
    only the arithmetic differs. Equal greedy ids on quantized files need kernels that round
    activations as llama.cpp does (issue 12's kernel slice).

With --write-goldens it stores, per type, llama.cpp's ids on the decoded file (checked by
tests/quant_peer_greedy_test.cc against our run on the quantized file, which the test writes
itself: our quantizers are bit-exact with llama.cpp's, so it is the same file) and, for the
record, llama.cpp's ids on the quantized file, in tests/data/quant_peer_greedy.json.

  scripts/peer_quant_crosscheck.py [--bin build/release/apps/streamingllm/streamingllm]
                                   [--type q4_K ...] [--write-goldens]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_crosscheck as pc  # noqa: E402  (run_ours, run_peer, max_logprob_diff)

ROOT = pc.ROOT
STORIES = os.path.join(os.path.dirname(ROOT), "shared", "models", "stories260K", "stories260K.gguf")
# The model of tests/quant_peer_greedy_test.cc: llama,
# stories260K's 512-token vocabulary, 256 wide, ffn 512, 8 layers (so that the mixes' layer
# choices differ from the base type), 4 heads over 2 kv heads.
OPTIONS = dict(n_embd=256, n_layer=8, n_head=4, n_head_kv=2, n_ff=512, seed=12)
PROMPT = [1, 403, 261, 302, 71, 9, 264, 492, 317, 88, 43, 280]
TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl",
         "iq4_xs", "mxfp4", "Q4_K_M", "Q5_K_M"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/release/apps/streamingllm/streamingllm"))
    ap.add_argument("--type", action="append")
    ap.add_argument("--write-goldens", action="store_true")
    args = ap.parse_args()
    goldens = {"options": OPTIONS, "prompt": PROMPT, "n_tokens": pc.N_TOKENS, "ids": {},
               "peer_ids_on_quantized_file": {}}
    all_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base.gguf")
        cmd = [args.bin, "make-model", "--vocab", STORIES, "-o", base]
        for key, value in OPTIONS.items():
            cmd += [pc.FLAGS[key], str(value)]
        subprocess.run(cmd, check=True, capture_output=True)
        for t in args.type or TYPES:
            path = os.path.join(tmp, t + ".gguf")
            decoded = os.path.join(tmp, t + "-decoded.gguf")
            subprocess.run([args.bin, "quantize", base, path, "--type", t], check=True,
                           capture_output=True)
            subprocess.run([args.bin, "quantize", path, decoded, "--type", "f32"], check=True,
                           capture_output=True)
            ours, top = pc.run_ours(args.bin, path, PROMPT)
            peer_q = pc.run_peer(path, PROMPT)
            peer_d = pc.run_peer(decoded, PROMPT)
            same = ours == peer_d["ids"]
            gap = pc.max_logprob_diff(top, peer_d["top"])
            first = next((i for i, (a, b) in enumerate(zip(ours, peer_q["ids"])) if a != b), None)
            q0 = dict(peer_q["top"][0])
            own = max(abs(q0[i] - lp) for i, lp in peer_d["top"][0] if i in q0)
            mine = dict((i, lp) for i, lp in top[0])
            ours_gap = max(abs(mine[i] - lp) for i, lp in peer_q["top"][0] if i in mine)
            print(f"{t:7s} same weights: ids {'equal' if same else 'DIFFER'}, gap {gap:.1e} | "
                  f"quantized file in llama.cpp: loads, ids "
                  f"{'equal' if first is None else f'differ from step {first}'}, step-0 gap "
                  f"{ours_gap:.3f} (llama.cpp quantized vs decoded: {own:.3f})")
            all_ok &= same and gap < 1e-3
            goldens["ids"][t] = peer_d["ids"]
            goldens["peer_ids_on_quantized_file"][t] = peer_q["ids"]
    if args.write_goldens:
        out = os.path.join(ROOT, "tests", "data", "quant_peer_greedy.json")
        with open(out, "w") as f:
            json.dump(goldens, f, separators=(",", ":"))
            f.write("\n")
        print("wrote", out)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
