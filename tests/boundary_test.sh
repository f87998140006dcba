#!/bin/bash
# The public API's boundary (issue 9): the CLI and the bench programs (kernels_bench aside)
# compile with only include/ on their include path, and include/ includes nothing from src/ and no
# third-party header.
#   boundary_test.sh BUILD_DIR SOURCE_DIR TARGET...
set -u
build=$1 src=$2
shift 2
fail=0
# 1. The compile commands of the apps' and benches' objects name no src/ include directory.
for target in "$@"; do
  cmds=$(ninja -C "$build" -t commands "$target" 2>/dev/null | grep -E -- ' -c [^ ]*(apps|bench)/')
  if [ -z "$cmds" ]; then
    echo "no compile commands found for $target" >&2
    fail=1
    continue
  fi
  if grep -qE -- "-I *$src/src( |$)" <<<"$cmds"; then
    echo "$target compiles with $src/src on its include path" >&2
    fail=1
  fi
done
# 2. Public headers include only the standard library and each other.
while IFS= read -r line; do
  file=${line%%:*} inc=${line#*:}
  case "$inc" in
    *'"streamingllm/'*) ;;
    *'<'*'>'*)
      name=$(sed -E 's/.*<([^>]*)>.*/\1/' <<<"$inc")
      if [[ "$name" == */* || "$name" == *.h* ]]; then
        echo "$file: not a standard header: $inc" >&2
        fail=1
      fi
      ;;
    *)
      echo "$file: includes outside include/streamingllm: $inc" >&2
      fail=1
      ;;
  esac
done < <(grep -H '^#include' "$src"/include/streamingllm/*.h | sed -E 's/:#include */:/')
[ $fail = 0 ] && echo "boundary ok"
exit $fail
