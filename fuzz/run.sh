#!/usr/bin/env bash
# fuzz/run.sh SECONDS [TARGET...] — build the libFuzzer targets (build/fuzz, clang, ASan + UBSan)
# if needed, then run each target (default: all six) for SECONDS on a copy of its seed corpus, and
# print per target the executions, executions per second, corpus size and crashes.
#
# The committed corpus (fuzz/corpus/TARGET) is never written: each run starts from a copy in
# build/fuzz/runs/TARGET/corpus, which is kept, with the log, until the next run. An input that
# crashes, leaks or times out is saved in build/fuzz/runs/TARGET/ as crash-*, leak-*, timeout-*
# (reproduce: build/fuzz/fuzz/TARGET FILE). Exit status: 0 when no target failed, 1 otherwise.
#
# Environment: FUZZ_JOBS (ninja -j, default 2), FUZZ_NICE (nice level, default 0), FUZZ_ARGS
# (extra libFuzzer flags), FUZZ_BUILD=0 (run the targets as built, without ninja). See
# docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(model_ref_fuzz archive_fuzz bundle_fuzz csv_fuzz infer_request_fuzz xgboost_fuzz)
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
  echo "usage: fuzz/run.sh SECONDS [TARGET...]   (targets: ${ALL_TARGETS[*]})" >&2
  exit 2
fi
seconds=$1; shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
  [ -d "fuzz/corpus/$t" ] || { echo "fuzz/run.sh: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

build=build/fuzz
if [ ! -f "$build/build.ninja" ]; then
  echo "==> configuring $build (clang, libFuzzer, ASan + UBSan)" >&2
  CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true -Dtests=false -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link \
    --buildtype=debugoptimized >/dev/null
fi
if [ "${FUZZ_BUILD:-1}" != 0 ]; then
  echo "==> building the fuzz targets" >&2
  ninja -C "$build" -j"${FUZZ_JOBS:-2}" "${targets[@]/#/fuzz/}" >/dev/null
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
stat_of() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }

# bundle_fuzz keeps its registry in tmpfs; an aborted target cannot clean up, so we do.
export MODELREG_FUZZ_TMP
MODELREG_FUZZ_TMP=$(mktemp -d "$([ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/modelreg-fuzz.XXXXXX")
trap 'rm -rf "$MODELREG_FUZZ_TMP"' EXIT

failed=0
printf '%-20s %8s %12s %8s %8s %8s  %s\n' target seconds executions exec/s corpus crashes result
for t in "${targets[@]}"; do
  run="$build/runs/$t"
  rm -rf "$run"
  mkdir -p "$run/corpus"
  cp fuzz/corpus/"$t"/* "$run/corpus/"
  flags=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix="$run/")
  [ -f "fuzz/dict/$t.dict" ] && flags+=(-dict="fuzz/dict/$t.dict")
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  status=0
  nice -n "${FUZZ_NICE:-0}" "$build/fuzz/$t" "${flags[@]}" ${FUZZ_ARGS:-} "$run/corpus" >"$run/log" 2>&1 || status=$?
  # libFuzzer stops at the first failing input and saves it: crash-*, leak-*, timeout-*, oom-*.
  artifacts=$(find "$run" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -printf '%f ')
  if [ "$status" -eq 0 ] && [ -z "$artifacts" ]; then
    result=ok
  else
    result="FAILED (exit $status; ${artifacts:-no input saved}; see $run/log)"
    failed=1
  fi
  printf '%-20s %8s %12s %8s %8s %8s  %s\n' "$t" "$seconds" "$(stat_of number_of_executed_units "$run/log")" \
    "$(stat_of average_exec_per_sec "$run/log")" "$(find "$run/corpus" -type f | wc -l)" "$(echo $artifacts | wc -w)" "$result"
done
exit $failed
