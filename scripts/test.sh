#!/usr/bin/env bash
# Install what is missing, build stowage and run every test with ctest, in
# two passes. The first uses a RelWithDebInfo build (build/), the second a
# Debug build with AddressSanitizer, LeakSanitizer and
# UndefinedBehaviorSanitizer (build-asan/). The script exits non-zero when
# any step of either pass fails. A fuzz smoke run follows (scripts/fuzz.sh,
# STOWAGE_FUZZ_SECONDS per target, default 10), skipped with --quick or a
# REGEX.
#
# Usage: scripts/test.sh [--quick] [[-R] REGEX]
#   --quick   skip the sanitizer pass
#   REGEX     run only the ctest tests whose names match (ctest -R),
#             for example 'unit\.' or 'integration\.test_harness'
#
# Environment variables:
#   STOWAGE_TEST_JOBS       parallel build and test jobs (default 2)
#   STOWAGE_BUILD_DIR       release build directory (default build)
#   STOWAGE_ASAN_BUILD_DIR  sanitizer build directory (default build-asan)
#   STOWAGE_SANITIZE_CC     compilers to try, in order, for the sanitizer
#                           pass (default "clang gcc")
set -euo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

quick=0
regex=""
while (($# > 0)); do
  case $1 in
    --quick) quick=1 ;;
    -R)
      (($# >= 2)) || { echo "test.sh: -R needs a regular expression" >&2; exit 2; }
      regex=$2
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) regex=$1 ;;
  esac
  shift
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# moto, boto3 and awscli come with the machine's pyenv Python. A shell that
# did not load pyenv (cron, a bare CI environment) needs its shims on PATH.
if ! python3 -c 'import moto' 2>/dev/null && [[ -d ${HOME:-/root}/.pyenv/shims ]]; then
  export PATH="${HOME:-/root}/.pyenv/shims:$PATH"
fi

export AWS_EC2_METADATA_DISABLED=true
jobs=${STOWAGE_TEST_JOBS:-2}
build_dir=${STOWAGE_BUILD_DIR:-$root/build}
asan_build_dir=${STOWAGE_ASAN_BUILD_DIR:-$root/build-asan}
# Every server the test harness starts carries this value in its
# environment, so the servers a test left running can be found afterwards.
run_id="test-sh-$$-$(date +%s)"

ctest_filter=()
if [[ -n $regex ]]; then
  ctest_filter=(-R "$regex")
fi

results=()
failed=0

note() {
  printf '\n== test.sh: %s\n' "$*"
}

# Report and stop the processes that carry this run's id: servers that a
# test left running. Returns 1 when there were any.
stop_leftover_servers() {
  local files pids=() file pid
  files=$(grep -lzx "STOWAGE_TEST_RUN_ID=$run_id" /proc/[0-9]*/environ 2>/dev/null || true)
  for file in $files; do
    pid=${file#/proc/}
    pid=${pid%/environ}
    pids+=("$pid")
  done
  ((${#pids[@]} == 0)) && return 0
  echo "test.sh: tests left these servers running; stopping them:" >&2
  ps -o pid,user,args -p "$(IFS=,; echo "${pids[*]}")" >&2 || true
  kill -TERM "${pids[@]}" 2>/dev/null || true
  sleep 5
  kill -KILL "${pids[@]}" 2>/dev/null || true
  return 1
}

trap 'stop_leftover_servers || true' EXIT

# run_pass NAME BUILD_DIR CMAKE_ARGUMENTS...: configure, build, run ctest.
run_pass() {
  local name=$1 dir=$2 started=$SECONDS
  shift 2

  note "$name: configure $dir"
  if ! cmake -S "$root" -B "$dir" "$@"; then
    results+=("$name: configure FAILED")
    failed=1
    return
  fi

  # After a failed build, make goes on (-k) with the targets that do not
  # depend on the broken one, and ctest still runs, so that one run reports
  # every failure: tests whose program did not build fail as "Not Run".
  note "$name: build"
  local status=passed keep_going=()
  [[ -f $dir/Makefile ]] && keep_going=(-- -k)
  if ! cmake --build "$dir" -j "$jobs" "${keep_going[@]}"; then
    status="build FAILED"
    failed=1
  fi

  note "$name: ctest"
  if ! STOWAGE_TEST_RUN_ID=$run_id ctest --test-dir "$dir" --output-on-failure --no-tests=error \
      -j "$jobs" "${ctest_filter[@]}"; then
    [[ $status == passed ]] && status="tests FAILED" || status="$status, tests FAILED"
    failed=1
  fi
  if ! stop_leftover_servers; then
    status="$status, servers left running"
    failed=1
  fi
  results+=("$name: $status ($((SECONDS - started)) s)")
}

# Print the first compiler that builds and runs a program with ASan and UBSan.
pick_sanitizer_compiler() {
  local compiler probe
  probe=$(mktemp -d)
  printf 'int main(void) { return 0; }\n' > "$probe/probe.c"
  for compiler in ${STOWAGE_SANITIZE_CC:-clang gcc}; do
    if command -v "$compiler" >/dev/null &&
      "$compiler" -fsanitize=address,undefined "$probe/probe.c" -o "$probe/probe" 2>/dev/null &&
      "$probe/probe"; then
      rm -rf "$probe"
      echo "$compiler"
      return 0
    fi
  done
  rm -rf "$probe"
  return 1
}

note "install dependencies"
scripts/install-deps.sh

run_pass release "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTOWAGE_SANITIZE=OFF

if ((quick)); then
  results+=("sanitizer: skipped (--quick)")
elif ! sanitizer_cc=$(pick_sanitizer_compiler); then
  results+=("sanitizer: FAILED, no compiler among '${STOWAGE_SANITIZE_CC:-clang gcc}' builds with -fsanitize=address,undefined")
  failed=1
else
  # A build directory configured with another compiler cannot be reused.
  cache=$asan_build_dir/CMakeCache.txt
  if [[ -f $cache ]] && ! grep -qx "CMAKE_C_COMPILER:[A-Z]*=$(command -v "$sanitizer_cc")" "$cache"; then
    rm -rf "$asan_build_dir"
  fi
  export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  run_pass "sanitizer ($sanitizer_cc)" "$asan_build_dir" -DCMAKE_BUILD_TYPE=Debug -DSTOWAGE_SANITIZE=ON \
    -DCMAKE_C_COMPILER="$(command -v "$sanitizer_cc")"
fi

# Fuzz smoke run: each libFuzzer target for a few seconds on its seed
# corpus (scripts/fuzz.sh documents longer runs). Skipped with a regex,
# which selects ctest tests only.
if ((quick)) || [[ -n $regex ]]; then
  results+=("fuzz: skipped")
else
  started=$SECONDS
  note "fuzz smoke run"
  if scripts/fuzz.sh "${STOWAGE_FUZZ_SECONDS:-10}"; then
    results+=("fuzz: passed ($((SECONDS - started)) s)")
  else
    results+=("fuzz: FAILED")
    failed=1
  fi
fi

note "summary (${SECONDS} s)"
printf '  %s\n' "${results[@]}"
exit "$failed"
