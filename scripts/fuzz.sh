#!/usr/bin/env bash
# Build the libFuzzer targets with clang (build-fuzz/) and run each one for
# a bounded time on a copy of its seed corpus in tests/fuzz/corpus/.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  default 10 (the smoke run in scripts/test.sh);
#                       developers run minutes or hours, for example 3600
# A crash leaves the reproducer in build-fuzz/crashes/TARGET/ and makes the
# script exit non-zero; rerun one with build-fuzz/TARGET FILE.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-10}
shift || true
build_dir=${STOWAGE_FUZZ_BUILD_DIR:-$root/build-fuzz}

if ! command -v clang >/dev/null; then
  echo "fuzz.sh: clang is not installed; run scripts/install-deps.sh" >&2
  exit 1
fi

CC=clang cmake -S "$root" -B "$build_dir" -DSTOWAGE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=("$@")
if ((${#targets[@]} == 0)); then
  for source in "$root"/tests/fuzz/fuzz_*.c; do
    targets+=("$(basename "$source" .c)")
  done
fi
cmake --build "$build_dir" -j "${STOWAGE_TEST_JOBS:-2}" --target "${targets[@]}" >/dev/null

failed=0
for target in "${targets[@]}"; do
  work=$(mktemp -d)
  crashes="$build_dir/crashes/$target"
  mkdir -p "$crashes"
  cp -r "$root/tests/fuzz/corpus/$target/." "$work/"
  echo "fuzz.sh: $target for ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$build_dir/$target" -max_total_time="$seconds" -max_len=65536 -timeout=20 \
      -rss_limit_mb=2048 -artifact_prefix="$crashes/" -print_final_stats=1 "$work" \
      >"$build_dir/$target.log" 2>&1; then
    echo "fuzz.sh: $target FAILED; log: $build_dir/$target.log" >&2
    tail -40 "$build_dir/$target.log" >&2
    failed=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$build_dir/$target.log" | tail -2
  fi
  rm -rf "$work"
done
exit "$failed"
