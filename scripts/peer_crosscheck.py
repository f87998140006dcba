#!/usr/bin/env python3
"""Cross-checks streamingllm's greedy decoding against llama.cpp's on random-weight models.

For each case below: `streamingllm make-model` writes the model, `streamingllm run --print-ids
--print-top-logprobs 5` decodes 64 greedy tokens from a prompt given as token ids (dense cache,
no tokenizer involved), and peer/greedy.mjs does the same with llama.cpp (node-llama-cpp 3.21.1,
CPU). It checks that the ids are equal and that the top-5 log-probabilities of the first 8 steps
agree within 1e-3, and prints the top-1 margins (logprob[top1] - logprob[top2] = the logit gap)
over the 64 steps. With --write-goldens it writes the peer's output and the model's options to
tests/data/peer_greedy_<case>.json, which tests/peer_greedy_test.cc checks in the default suite.

  scripts/peer_crosscheck.py [--bin build/release/apps/streamingllm/streamingllm]
                             [--case NAME ...] [--write-goldens]

Needs node and node-llama-cpp 3.21.1 (see peer/greedy.mjs for where it is looked up).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB_DIR = os.path.join(os.path.dirname(ROOT), "shared", "data", "vocab")
N_TOKENS, TOP_K, TOP_STEPS, TOLERANCE = 64, 5, 8, 1e-3

# "The quick brown fox jumps over the lazy dog. It was a bright cold day in April, and the
# clocks were striking" in the llama-spm vocabulary, after BOS: longer than the Gemma cases'
# sliding window (28 ids).
GEMMA_PROMPT = [1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203, 29889, 739,
                471, 263, 11785, 11220, 2462, 297, 3786, 29892, 322, 278, 12006, 29879, 892, 29191]

# A short English prompt as token ids: in the SentencePiece vocabularies (llama-spm, phi-3) after
# BOS, in the byte-level BPE ones without.
SPM_PROMPT = [1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203, 29889]
QWEN2_PROMPT = [785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13]
NEOX_PROMPT = [510, 3158, 8516, 30013, 27287, 689, 253, 22658, 4370, 15]  # gpt-neox and mpt
FALCON_PROMPT = [487, 1942, 6537, 27224, 25607, 648, 248, 16569, 3696, 25]

# Seeds of the K-quant cases: among the first few, one whose 64 steps all have top-1 margins
# above 1e-2 (peer_greedy_test requires it).
KQ_SEEDS = {"q4_K": 23, "q6_K": 22, "Q4_K_M": 22}

# The make-model options (as MakeModelOptions names them) every case starts from.
BASE = dict(n_embd=64, n_layer=2, n_head=4, n_head_kv=4, n_ff=172, n_ctx=2048,
            rope_base=10000.0, rope_scaling="none", rope_factor=8.0, type="f32")


def case(arch, vocab, seed, prompt, quantize=None, **options):
    """A case: BASE with `options` changed, decoded from `prompt`; `quantize`: the type that
    `streamingllm quantize` turns the f32 model into first."""
    c = dict(options=dict(BASE, arch=arch, vocab="ggml-vocab-%s.gguf" % vocab, seed=seed,
                          **options),
             prompt=prompt)
    if quantize:
        c["quantize"] = quantize
    return c


CASES = {
    # Llama 3 / 3.1: byte-level BPE vocabulary, rope base 500000, the rope_freqs factors, GQA.
    "llama3": case("llama", "llama-bpe", 1,
                   [128000, 791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13],
                   n_head_kv=2, n_ff=160, rope_base=500000.0, rope_scaling="llama3"),
    # Llama 2: SentencePiece vocabulary, rope base 10000, no scaling, one kv head per head.
    "llama2": case("llama", "llama-spm", 4, SPM_PROMPT),
    # Rope scaling variants llama.cpp reads from metadata (live check only).
    "llama-yarn": case("llama", "llama-spm", 4, SPM_PROMPT, n_head_kv=2, n_ctx=4096,
                       rope_scaling="yarn", rope_factor=4.0),
    "llama-linear": case("llama", "llama-spm", 5, SPM_PROMPT, n_ctx=4096, rope_scaling="linear",
                         rope_factor=2.0),
    # Qwen2 / Qwen2.5: q/k/v biases, NeoX rope, GQA; the qwen2 byte-level BPE vocabulary.
    "qwen2": case("qwen2", "qwen2", 7, QWEN2_PROMPT, n_head_kv=2, n_ff=160, rope_base=1000000.0),
    # Qwen3: per-head q/k RMSNorm before rope, no biases.
    "qwen3": case("qwen3", "qwen2", 8, QWEN2_PROMPT, n_head_kv=2, n_ff=160, rope_base=1000000.0),
    # Phi-3: fused QKV and fused gate/up, NeoX rope; the phi-3 (SentencePiece) vocabulary.
    "phi3": case("phi3", "phi-3", 9, SPM_PROMPT, n_ctx=4096),
    # Phi-3.5 / Phi-4 long-rope: rope_factors_long / _short and attn_factor. llama.cpp picks the
    # long factors when its context (here 256: greedy.mjs asks for ~90, padded to 256) exceeds
    # original_context_length, we when the cache (1024 tokens, see run_ours) does: original 128 takes
    # the long ones on both sides, original 4096 the short ones (tests/peer_greedy_test.cc also
    # decodes with a 1024-token cache).
    "phi3-longrope": case("phi3", "phi-3", 13, SPM_PROMPT, n_ctx=4096, rope_scaling="longrope",
                          rope_factor=32.0),
    "phi3-shortrope": case("phi3", "phi-3", 9, SPM_PROMPT, n_ctx=16384, rope_scaling="longrope",
                           rope_factor=4.0),
    # Pythia: LayerNorm with bias, fused QKV with bias, partial rotary (a quarter of each head),
    # NeoX rope, GELU MLP, parallel residual; the gpt-neox byte-level BPE vocabulary.
    "gptneox": case("gptneox", "gpt-neox", 10, NEOX_PROMPT, n_ff=256),
    # Gemma 2: embedding x sqrt(dim), post-attention/FFN norms, GeGLU (tanh), attention and final
    # logit soft-capping, local layers (window 16) alternating with global ones; a prompt of 28
    # tokens, so the local layers slide from the prompt on.
    "gemma2": case("gemma2", "llama-spm", 17, GEMMA_PROMPT, n_head_kv=2, n_ff=160,
                   sliding_window=16),
    # Gemma 3: per-head q/k norms, 2 local layers (window 16, base 10000) then 1 global (base 1e6,
    # linear rope scaling x2 on the global layer only; make-model writes the layer pattern 3 for
    # 3 layers), no final soft-capping (as released). With 6 layers (pattern 6) the ids are equal
    # too, but llama.cpp's f16-table GELU moves the log-probabilities by up to 5e-3 over that
    # depth. Seeds (both cases): among the first few, one whose 64 steps all have top-1 margins
    # above 0.05.
    "gemma3": case("gemma3", "llama-spm", 14, GEMMA_PROMPT, n_layer=3, n_head_kv=2, n_ff=160,
                   rope_base=1000000.0, rope_scaling="linear", rope_factor=2.0,
                   sliding_window=16),
    # Falcon-7B style: one LayerNorm feeding attention and MLP in parallel, multi-query (one KV
    # head), fused QKV, NeoX rope, GELU MLP, no biases on the matrices; the falcon vocabulary.
    "falcon-7b": case("falcon", "falcon", 22, FALCON_PROMPT, n_head_kv=1, n_ff=256),
    # Falcon-40B style: attn_norm_2 for attention, attn_norm for the MLP, several KV heads.
    "falcon-40b": case("falcon", "falcon", 13, FALCON_PROMPT, n_head_kv=2, n_ff=256),
    # MPT: ALiBi (max bias 8, no rope; 6 heads, so both of ggml's slope series), LayerNorms
    # without biases, QKV clipped to +-1.5, GELU MLP, GQA; the mpt vocabulary (GPT-NeoX's BPE).
    "mpt": case("mpt", "mpt", 23, NEOX_PROMPT, n_embd=96, n_head=6, n_head_kv=3, n_ff=384),
    # Quantized weights (make-model f32, then `streamingllm quantize`): llama.cpp multiplies q8_0 /
    # q4_0 rows with activations quantized to q8_0, as streamingllm's integer kernels do. 128/256
    # columns: 4 and 8 blocks per row.
    "llama2-q8_0": case("llama", "llama-spm", 25, SPM_PROMPT, quantize="q8_0", n_embd=128,
                        n_head_kv=2, n_ff=256),
    "llama2-q4_0": case("llama", "llama-spm", 22, SPM_PROMPT, quantize="q4_0", n_embd=128,
                        n_head_kv=2, n_ff=256),
    # K-quants (256-value super-blocks, so rows of 256 and 512): llama.cpp multiplies them with
    # activations quantized to q8_K, as streamingllm's integer kernels do. Q4_K_M is llama.cpp's
    # mix (q4_K, with q6_K for some attn_v / ffn_down layers and the output).
    **{"llama2-" + q: case("llama", "llama-spm", KQ_SEEDS[q], SPM_PROMPT, quantize=q, n_embd=256,
                           n_head_kv=2, n_ff=512)
       for q in ("q4_K", "q6_K", "Q4_K_M")},
}

FLAGS = dict(arch="--arch", n_embd="--n-embd", n_layer="--n-layer", n_head="--n-head",
             n_head_kv="--n-head-kv", n_ff="--n-ff", n_ctx="--ctx", rope_base="--rope-base",
             rope_scaling="--rope-scaling", rope_factor="--rope-factor", seed="--seed",
             type="--type", sliding_window="--sliding-window")


def make_model(binary, options, out):
    cmd = [binary, "make-model", "--vocab", os.path.join(VOCAB_DIR, options["vocab"]), "-o", out]
    for key, flag in FLAGS.items():
        if key in options:
            cmd += [flag, str(options[key])]
    subprocess.run(cmd, check=True, capture_output=True)


def run_ours(binary, model, prompt):
    """Our greedy ids and, per step, the top-5 [id, logprob] pairs; None if we cannot load it."""
    proc = subprocess.run(
        [binary, "run", "-m", model, "--prompt-ids", " ".join(map(str, prompt)), "-n",
         str(N_TOKENS), "--ignore-eos", "--temp", "0", "--policy", "dense", "--ctx-size", "1024",
         "-t", "1",
         "--print-ids", "--print-top-logprobs", str(TOP_K)],
        capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  streamingllm run failed: {proc.stderr.strip()}")
        return None, None
    out = proc.stdout.splitlines()
    ids = [int(x) for x in out[0].split()]
    top = [[[int(p.split(":")[0]), float(p.split(":")[1])] for p in line.split()]
           for line in out[1:]]
    return ids, top


def run_peer(model, prompt):
    out = subprocess.run(
        ["node", os.path.join(ROOT, "peer", "greedy.mjs"), model, " ".join(map(str, prompt)),
         str(N_TOKENS), str(TOP_K), str(TOP_STEPS)],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def max_logprob_diff(ours, peer):
    """Max |difference| over the peer's top-k of each step, matched by id."""
    worst = 0.0
    for step, row in enumerate(peer):
        mine = dict((i, lp) for i, lp in ours[step])
        for token, lp in row:
            if token not in mine:
                return float("inf")
            worst = max(worst, abs(mine[token] - lp))
    return worst


def write_golden(name, case, peer):
    golden = dict(case=name, options=case["options"], prompt=case["prompt"], ids=peer["ids"],
                  **({"quantize": case["quantize"]} if "quantize" in case else {}),
                  top=peer["top"],
                  source="llama.cpp via node-llama-cpp 3.21.1 (peer/greedy.mjs), CPU, 1 thread")
    path = os.path.join(ROOT, "tests", "data", f"peer_greedy_{name}.json")
    with open(path, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"  wrote {os.path.relpath(path, ROOT)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "release", "apps",
                                                      "streamingllm", "streamingllm"))
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--write-goldens", action="store_true",
                        help="write the goldens of the cases that pass")
    parser.add_argument("--peer-only-goldens", action="store_true",
                        help="with --write-goldens: also where streamingllm cannot load the file "
                             "(a tokenizer it does not support yet)")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.case or list(CASES):
            case = CASES[name]
            model = os.path.join(tmp, name + ".gguf")
            make_model(args.bin, case["options"], model)
            if "quantize" in case:
                f32 = model + ".f32"
                os.replace(model, f32)
                subprocess.run([args.bin, "quantize", f32, model, "--type", case["quantize"]],
                               check=True, capture_output=True)
            ids, top = run_ours(args.bin, model, case["prompt"])
            peer = run_peer(model, case["prompt"])
            if ids is None:
                failed = True
                print(f"{name}: peer only (ids {peer['ids'][:8]}...) | FAIL")
                if args.write_goldens and args.peer_only_goldens:
                    write_golden(name, case, peer)
                continue
            margins = [row[0][1] - row[1][1] for row in top[:N_TOKENS]]
            same = ids == peer["ids"]
            diff = max_logprob_diff(top, peer["top"])
            ok = same and diff <= TOLERANCE
            failed |= not ok
            first = next((i for i, (a, b) in enumerate(zip(ids, peer["ids"])) if a != b), None)
            print(f"{name}: ids {'equal' if same else f'differ from step {first}'} "
                  f"({len(ids)} tokens, {len(set(ids))} distinct) | max |logprob diff| top-{TOP_K} "
                  f"x {TOP_STEPS} steps {diff:.2e} | top-1 margin mean "
                  f"{sum(margins) / len(margins):.3f} min {min(margins):.4f} | "
                  f"{'OK' if ok else 'FAIL'}")
            if not same:
                print(f"  ours {ids}\n  peer {peer['ids']}")
            if args.write_goldens and ok:
                write_golden(name, case, peer)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
