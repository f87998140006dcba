#!/usr/bin/env bash
# Issue 5, acceptance 1: the MT-Bench conversation in batch mode, 20 turns (10 questions), all 160
# turns (80 questions) and the file three times over (480 turns), each through one stories260K
# conversation with 4 sinks + a 256-token window. Memory must not grow with the conversation: the
# cache bytes at the end equal those at the start, and peak RSS stays flat from 20 to 480 turns.
# Prints a Markdown table (docs/benchmarks-chat.md).
#
#   bench/chat_rss.sh [path/to/streamingllm]     (default: build/release/apps/streamingllm/streamingllm)
#   MAX_REPLY=256 THREADS=2 bench/chat_rss.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/release/apps/streamingllm/streamingllm}
model=${MODEL:-$root/../shared/models/stories260K/stories260K.gguf}
prompts=${PROMPTS:-$root/../shared/data/chat/mt_bench_questions.jsonl}
max_reply=${MAX_REPLY:-256}
threads=${THREADS:-2}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -n 10 "$prompts" > "$tmp/q10.jsonl"
cat "$prompts" "$prompts" "$prompts" > "$tmp/q240.jsonl"

echo "| turns | questions | prompt tokens | reply tokens | stream tokens | reply tok/s | cache bytes (start) | cache bytes (end) | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|---|---|"
for file in "$tmp/q10.jsonl" "$prompts" "$tmp/q240.jsonl"; do
  questions=$(grep -c . "$file")
  "$bin" chat -m "$model" --prompts "$file" --sinks 4 --window 256 --max-reply "$max_reply" \
    --temp 0.8 --seed 1 -t "$threads" > "$tmp/out.txt" 2> "$tmp/err.txt"
  stats=$(grep ' turns in ' "$tmp/err.txt")
  # "streamingllm chat: N turns in S s | prompt P tokens | replies R tokens (T tok/s) |
  #  stream N tokens | cache B bytes (at start B0) | peak RSS M MiB"
  turns=$(sed -E 's/.*chat: ([0-9]+) turns.*/\1/' <<< "$stats")
  prompt=$(sed -E 's/.*prompt ([0-9]+) tokens.*/\1/' <<< "$stats")
  reply=$(sed -E 's/.*replies ([0-9]+) tokens.*/\1/' <<< "$stats")
  tok_s=$(sed -E 's/.*\(([0-9.]+) tok\/s\).*/\1/' <<< "$stats")
  stream=$(sed -E 's/.*stream ([0-9]+) tokens.*/\1/' <<< "$stats")
  cache_end=$(sed -E 's/.*cache ([0-9]+) bytes.*/\1/' <<< "$stats")
  cache_start=$(sed -E 's/.*at start ([0-9]+)\).*/\1/' <<< "$stats")
  rss=$(sed -E 's/.*peak RSS ([0-9.]+) MiB.*/\1/' <<< "$stats")
  users=$(grep -c '^USER: ' "$tmp/out.txt" || true)
  if [[ "$users" -lt "$turns" || "$cache_end" != "$cache_start" ]]; then
    echo "FAILED: $users USER lines for $turns turns, cache $cache_start -> $cache_end" >&2
    exit 1
  fi
  echo "| $turns | $questions | $prompt | $reply | $stream | $tok_s | $cache_start | $cache_end | $rss |"
done
