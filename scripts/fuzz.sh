#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang, ASan + UBSan), writes their seed corpora
# from ../shared into build/fuzz/seeds (fuzz/seeds.py), and runs each target for SECONDS on its
# corpus (build/fuzz/corpus/NAME, kept and grown between runs) with its dictionary
# (fuzz/dicts/NAME.dict) and options (fuzz/NAME.options: more libFuzzer flags, e.g. -max_len).
# A crash, leak, sanitizer report, an input slower than 10 s or above 2 GB fails the run; its
# input is kept in build/fuzz/artifacts/NAME/. Each clean run appends a line (date, target, seconds,
# runs, coverage, features, corpus size) to the committed log docs/reliability/fuzz-log.tsv, whose
# sums scripts/fuzz_report.py writes into docs/RELIABILITY.md.
# Usage: scripts/fuzz.sh [SECONDS (default 10)] [NAME...] (default: every target), SLLM_FUZZ_JOBS
# targets at a time (default: one per core).
# SLLM_FUZZ_PRESET=debug-asan runs the targets of the clang ASan/UBSan test tree instead (CI's smoke
# run: no third build of the engine, but no coverage hooks in it either, so the targets fuzz
# nearly blind there; their runs are logged in build/debug-asan/stats.tsv, not in the fuzz log).
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
stats=$out/stats.tsv
[ "$preset" = fuzz ] && stats=docs/reliability/fuzz-log.tsv
[ -f "$stats" ] || printf 'date\ttarget\tseconds\truns\tcov\tft\tcorpus\tn\tfirst\n' >"$stats"
# fuzz_one NAME: one target's run; its lines are printed together when it ends.
fuzz_one() {
  local name=$1 corpus=$out/corpus/$1 artifacts=$out/artifacts/$1 log=$out/$1.log more=()
  mkdir -p "$corpus" "$artifacts" "$out/seeds/$name"
  local flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
               -artifact_prefix="$artifacts/")
  [ -f "fuzz/dicts/$name.dict" ] && flags+=(-dict="fuzz/dicts/$name.dict")
  [ -f "fuzz/$name.options" ] && read -r -a more <"fuzz/$name.options" && flags+=("${more[@]}")
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$out/fuzz/${name}_fuzz" "${flags[@]}" "$corpus" "$out/seeds/$name" >"$log" 2>&1; then
    local last runs cov ft files
    last=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    files=$(find "$corpus" -type f | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t1\t\n' "$(date -u +%FT%TZ)" "$name" "$seconds" "$runs" "$cov" \
      "$ft" "$files" >>"$stats"
    echo "== $name: ${seconds} s, $runs runs, cov $cov, ft $ft, corpus $files"
  else
    echo "FAILED $name (log: $log, inputs: $artifacts/)"
    tail -40 "$log"
    return 1
  fi
}
# SLLM_FUZZ_JOBS targets at a time (default: one per core).
jobs=${SLLM_FUZZ_JOBS:-$(nproc)}
failed=()
declare -A running=()
reap() {  # waits for one target to end; records a failure
  local pid rc=0
  wait -n -p pid "${!running[@]}" || rc=$?
  [ $rc -ne 0 ] && failed+=("${running[$pid]}")
  unset "running[$pid]"
}
for name in "${targets[@]}"; do
  [ ${#running[@]} -ge "$jobs" ] && reap
  fuzz_one "$name" &
  running[$!]=$name
done
while [ ${#running[@]} -gt 0 ]; do reap; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets that failed: ${failed[*]}"
  exit 1
fi
