#!/usr/bin/env bash
# modelreg — one script for set-up, build, demonstration and tests.
#
#   ./run.sh demo    install what is missing, build what the demonstration needs (build/), run it
#   ./run.sh test    install what is missing, build with -Dwerror=true (build/ci) and run every
#                    functional test: unit, CLI, server, fault suite, README examples (6.4 min
#                    measured on a fresh clone on 2 cores, package installation aside)
#   ./run.sh deep    the slow passes, after `./run.sh test`: every test again under AddressSanitizer
#                    + UBSan (build/sanitize), the watcher and server tests under ThreadSanitizer
#                    (build/tsan), each libFuzzer target for 15 s (build/fuzz, fuzz/run.sh); installs
#                    clang and libclang-rt-14-dev first. MODELREG_SANITIZE=0, MODELREG_TSAN=0 and
#                    MODELREG_FUZZ=0 skip a pass. CI (.ci/run) runs test, then deep.
#   ./run.sh build   install what is missing and build everything (build/)
#
# build/ is a user's build: no -Dwerror, so a compiler's false-positive warning never stops a
# demonstration. The tests build in their own directory with -Dwerror=true, so switching between
# demo and test never reconfigures (and rebuilds) either one.
#
# Works on a fresh Debian 12 machine as root or through sudo.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  g++ meson ninja-build pkg-config cmake python3
  libsqlitecpp-dev libsqlite3-dev sqlite3
  libboost-serialization-dev libzstd-dev zstd libfmt-dev libssl-dev libxxhash-dev
  libcli11-dev nlohmann-json3-dev libcpp-httplib-dev doctest-dev
  # Tests that produce models with scikit-learn and XGBoost at test time, through /usr/bin/python3.
  python3-numpy python3-sklearn python3-xgboost
  # The Python package (python/): built with pybind11 for Debian's python3, tested with pytest
  # (DataFrame inputs with pandas).
  python3-dev pybind11-dev python3-pytest python3-pandas
  # The Open Inference Protocol conformance test (tests/oip): the specification's schemas.
  python3-jsonschema python3-yaml
  # The web UI's browser tests (tests/ui) and screenshots (tools/ui_screenshots.py): headless Chromium.
  chromium chromium-driver python3-selenium
)
DEEP_PACKAGES=(clang libclang-rt-14-dev)  # the fuzz targets: clang and its libFuzzer runtime

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "run.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

configure() {  # configure DIR [meson options...]
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

# Every target of DIR but the benchmarks (bench/: run by hand, not needed by any test).
targets_but_benchmarks() {
  python3 - "$1" <<'PY'
import json, os, subprocess, sys
build = os.path.abspath(sys.argv[1])
bench = os.path.join(os.path.abspath('.'), 'bench') + os.sep
targets = json.loads(subprocess.check_output(['meson', 'introspect', build, '--targets']))
for t in targets:
    # alias targets ('run') have no file of their own; what they name is listed anyway
    if t['type'] != 'run' and not t['defined_in'].startswith(bench):
        for f in t['filename']:
            print(os.path.relpath(f, build))
PY
}

# The functional tests: build/ci, -Dwerror=true (as CI), everything but the benchmarks; -O1 without
# debug information, which compiles in about half the time of the project's default -O2 -g
# (measured on serve.cpp: 37 s against 69 s) and runs the tests nearly as fast.
run_tests() {
  configure build/ci -Dwerror=true -Doptimization=1 -Ddebug=false
  ninja -C build/ci build.ninja >/dev/null  # regenerate first, so the target list below is current
  log "building with -Dwerror=true (build/ci)"
  # shellcheck disable=SC2046 # one target a line
  ninja -C build/ci -j"$(nproc)" $(targets_but_benchmarks build/ci)
  log "tests"
  MODELREG_REQUIRE_PYTHON_DEPS=1 meson test -C build/ci --no-rebuild --print-errorlogs --num-processes "$(nproc)"
}

run_deep() {
  if [ "${MODELREG_SANITIZE:-1}" != 0 ]; then
    log "every test under AddressSanitizer + UndefinedBehaviorSanitizer (build/sanitize)"
    configure build/sanitize -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
    ninja -C build/sanitize -j"$(nproc)"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      meson test -C build/sanitize --no-rebuild --print-errorlogs --num-processes "$(nproc)" --timeout-multiplier 3
  fi
  if [ "${MODELREG_TSAN:-1}" != 0 ]; then
    # The hot-swap watcher, the embeddable server (tests/active_watcher_test.cpp holds both) and
    # the many-model repository (its poller, loaders, shadow scorer) are the multi-threaded parts.
    log "the watcher, server and repository tests under ThreadSanitizer (build/tsan)"
    configure build/tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false
    ninja -C build/tsan -j"$(nproc)" tests/active_watcher_test tests/model_repository_test
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
      meson test -C build/tsan --no-rebuild --print-errorlogs --timeout-multiplier 3 active_watcher model_repository
  fi
  if [ "${MODELREG_FUZZ:-1}" != 0 ]; then
    log "fuzzing: each libFuzzer target for 15 s (build/fuzz, clang; docs/fuzzing.md)"
    FUZZ_JOBS="$(nproc)" fuzz/run.sh 15
  fi
}

case "${1:-}" in
  demo)
    install_packages "${PACKAGES[@]}"
    configure build -Dwerror=false
    log "building the demonstration (build/)"
    ninja -C build -j"$(nproc)" registry-cli/modelreg examples/fraud_demo examples/tour python-package
    log "demonstration"
    ./build/examples/fraud_demo build/demo
    log "the lesson in Python (examples/lesson.py)"
    PYTHONPATH=build/python /usr/bin/python3 examples/lesson.py build/demo-python
    ;;
  test)
    install_packages "${PACKAGES[@]}"
    run_tests
    ;;
  deep)
    if [ "${MODELREG_FUZZ:-1}" != 0 ]; then
      install_packages "${PACKAGES[@]}" "${DEEP_PACKAGES[@]}"
    else
      install_packages "${PACKAGES[@]}"
    fi
    run_deep
    ;;
  build)
    install_packages "${PACKAGES[@]}"
    configure build -Dwerror=false
    log "building (build/)"
    ninja -C build -j"$(nproc)"
    ;;
  *)
    echo "usage: ./run.sh demo | test | deep | build" >&2
    exit 2
    ;;
esac
