#!/usr/bin/env bash
# Issue 12, acceptance 6: the quantized KV cache (--kv-type q8_0 / q4_0) against f16.
#   1. streaming PPL of stories260K over 20,000 tokens of tinystories_val_head.txt (4 sinks + 252
#      window, batches of 256, as docs/RESULTS.md), per KV type, with the cache bytes;
#   2. the loss on a random TinyLlama-1.1B-shaped model (a few hundred tokens, 4 + 124 cache so
#      that it evicts), per KV type against f16;
#   3. a 1M-token stream of stories260K with q8_0 K/V: tok/s and peak RSS every 100k tokens.
# Prints Markdown (docs/design.md, "Quantized keys and values").
#
#   bench/kv_quant_figures.sh [path/to/streamingllm]
#   THREADS=1 STREAM_TOKENS=1000000 (0: skip the stream) TINY_TOKENS=300 TINYLLAMA=/work/models/tinyllama-f16.gguf ...
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/release/apps/streamingllm/streamingllm}
stories=${MODEL:-$root/../shared/models/stories260K/stories260K.gguf}
tiny=${TINYLLAMA:-/work/models/tinyllama-f16.gguf}
text=${TEXT:-$root/../shared/data/text/tinystories_val_head.txt}
threads=${THREADS:-1}
ppl_tokens=${PPL_TOKENS:-20000}
tiny_tokens=${TINY_TOKENS:-300}
stream_tokens=${STREAM_TOKENS:-1000000}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads thread(s)," \
  "load average at start $(cut -d' ' -f1-3 /proc/loadavg); commit" \
  "$(git -C "$root" rev-parse --short HEAD), $(date -u +%F)."
echo

# ppl MODEL TOKENS CACHE BATCH TAG: one streaming run per KV type, then the table against f16.
ppl_table() {
  local model=$1 tokens=$2 cache=$3 batch=$4 tag=$5
  for kv in f32 f16 q8_0 q4_0; do
    "$bin" ppl -m "$model" -f "$text" --tokens "$tokens" --policy streaming --cache "$cache" \
      -b "$batch" --kv-type "$kv" -t "$threads" --summary "$tmp/$tag-$kv.sum" \
      --csv "$tmp/$tag-$kv.csv" > /dev/null 2>&1
  done
  "$bin" info -m "$model" | grep '^kv bytes/token' > "$tmp/$tag-info.txt"
  python3 - "$tmp" "$tag" "$cache" <<'PY'
import csv, math, re, sys
tmp, tag, cache = sys.argv[1], sys.argv[2], int(sys.argv[3])
info = open(f"{tmp}/{tag}-info.txt").read()
per_token = {kv: int(n) for n, kv in re.findall(r"(\d+) \((\w+)\)", info)}
def nll(kv):
    with open(f"{tmp}/{tag}-{kv}.csv") as f:
        return [float(r["nll_streaming"]) for r in csv.DictReader(f)]
base = nll("f16")
ppl_f16 = math.exp(sum(base) / len(base))
print("| KV type | cache bytes | vs f16 | mean NLL | PPL | vs f16 | mean abs NLL change vs f16 | tok/s |")
print("|---|---|---|---|---|---|---|---|")
for kv in ["f32", "f16", "q8_0", "q4_0"]:
    x = nll(kv)
    ppl = math.exp(sum(x) / len(x))
    dnll = sum(abs(a - b) for a, b in zip(x, base)) / len(x)
    with open(f"{tmp}/{tag}-{kv}.sum") as f:
        tok_s = float(next(csv.DictReader(f))["tok_per_s"])
    b = per_token[kv] * cache
    print(f"| {kv} | {b} | {b / (per_token['f16'] * cache):.1%} | {sum(x) / len(x):.4f} | {ppl:.5g} | "
          f"{(ppl / ppl_f16 - 1):+.3%} | {dnll:.2e} | {tok_s:.0f} |")
print(f"\n({len(base)} scored tokens.)")
PY
}

echo "**stories260K**, streaming 4 + 252, $ppl_tokens tokens of $(basename "$text"), batches of 256:"
echo
ppl_table "$stories" "$ppl_tokens" 256 256 stories
echo
if [[ -f $tiny ]]; then
  echo "**$(basename "$tiny")** (random TinyLlama-1.1B shape: head_dim 64, 4 KV heads), streaming" \
    "4 + 124, $tiny_tokens tokens, batches of 64:"
  echo
  ppl_table "$tiny" "$tiny_tokens" 128 64 tiny
  echo
fi

if [[ $stream_tokens == 0 ]]; then  # STREAM_TOKENS=0: the PPL tables only
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  exit 0
fi
echo "**A $stream_tokens-token stream**, stories260K, q8_0 K/V, 4 + 1020 cache, $threads thread(s):"
echo
"$bin" bench -m "$stories" --tokens "$stream_tokens" --kv-type q8_0 --report-every 100000 \
  -t "$threads" > "$tmp/stream.txt" 2> "$tmp/stream.err"
echo "| tokens | tok/s (last 100k) | peak RSS (MiB) |"
echo "|---|---|---|"
sed -nE 's/^ *([0-9]+) tokens \| *([0-9.]+) tok\/s \| peak RSS ([0-9.]+) MiB.*/| \1 | \2 | \3 |/p' \
  "$tmp/stream.err"
echo
echo '```'
grep -E '^(policy|generated|latency|  )' "$tmp/stream.txt" || cat "$tmp/stream.txt"
echo '```'
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
