#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang, ASan + UBSan), writes their seed corpora
# from ../shared into build/fuzz/seeds (fuzz/seeds.py), and runs each target for SECONDS on its
# corpus (build/fuzz/corpus/NAME, kept and grown between runs) with its dictionary
# (fuzz/dicts/NAME.dict) and options (fuzz/NAME.options: more libFuzzer flags, e.g. -max_len).
# A crash, leak, sanitizer report, an input slower than 10 s or above 2 GB fails the run; its
# input is kept in build/fuzz/artifacts/NAME/. Each run appends a line to build/fuzz/stats.tsv
# (date, target, seconds, runs, coverage, features, corpus size): docs/RELIABILITY.md's figures.
# Usage: scripts/fuzz.sh [SECONDS (default 10)] [NAME...] (default: every target)
# SLLM_FUZZ_PRESET=debug-asan runs the targets of the clang ASan/UBSan test tree instead (CI's smoke
# run: no third build of the engine, but no coverage hooks in it either, so the targets fuzz
# nearly blind there; their runs are logged in build/debug-asan/stats.tsv, not the fuzz preset's).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true
preset=${SLLM_FUZZ_PRESET:-fuzz}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)" --target sllm_fuzz_targets
out=build/$preset
shared=$(cd .. && pwd)/shared
python3 fuzz/seeds.py "$shared" "$out/seeds"
if [ $# -eq 0 ]; then mapfile -t targets <"$out/fuzz/targets.txt"; else targets=("$@"); fi
[ -f "$out/stats.tsv" ] || printf 'date\ttarget\tseconds\truns\tcov\tft\tcorpus\n' >"$out/stats.tsv"
failed=()
for name in "${targets[@]}"; do
  corpus=$out/corpus/$name artifacts=$out/artifacts/$name
  mkdir -p "$corpus" "$artifacts" "$out/seeds/$name"
  flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
         -artifact_prefix="$artifacts/")
  [ -f "fuzz/dicts/$name.dict" ] && flags+=(-dict="fuzz/dicts/$name.dict")
  [ -f "fuzz/$name.options" ] && read -r -a more <"fuzz/$name.options" && flags+=("${more[@]}")
  log=$out/$name.log
  echo "== $name: ${seconds} s"
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$out/fuzz/${name}_fuzz" "${flags[@]}" "$corpus" "$out/seeds/$name" >"$log" 2>&1; then
    last=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    files=$(find "$corpus" -type f | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$name" "$seconds" "$runs" "$cov" \
      "$ft" "$files" >>"$out/stats.tsv"
    echo "   $runs runs, cov $cov, ft $ft, corpus $files"
  else
    echo "FAILED $name (log: $log, inputs: $artifacts/)"
    tail -40 "$log"
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets that failed: ${failed[*]}"
  exit 1
fi
