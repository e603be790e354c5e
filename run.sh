#!/usr/bin/env bash
# modelreg — one script for set-up, build, demonstration and tests.
#
#   ./run.sh demo    install what is missing, build, run the demonstration
#   ./run.sh test    install what is missing, build with -Dwerror=true, run every test
#                    (then again under AddressSanitizer + UBSan unless MODELREG_SANITIZE=0,
#                    the watcher tests under ThreadSanitizer unless MODELREG_TSAN=0,
#                    then each libFuzzer target for 15 s unless MODELREG_FUZZ=0: fuzz/run.sh)
#   ./run.sh build   install what is missing and build only
#
# Works on a fresh Debian 12 machine as root or through sudo. The build directory is build/.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  g++ meson ninja-build pkg-config cmake python3
  libsqlitecpp-dev libsqlite3-dev sqlite3
  libboost-serialization-dev libzstd-dev zstd libfmt-dev libssl-dev libxxhash-dev
  libcli11-dev nlohmann-json3-dev libcpp-httplib-dev doctest-dev
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
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

build() {
  # Always -Dwerror=true (as CI): demo and test share build/ without reconfiguring it.
  configure build -Dwerror=true
  log "building"
  ninja -C build -j"$(nproc)"
}

case "${1:-}" in
  demo)
    install_packages
    build
    log "demonstration"
    ./build/examples/fraud_demo build/demo
    ;;
  test)
    if [ "${MODELREG_FUZZ:-1}" != 0 ]; then
      PACKAGES+=(clang libclang-rt-14-dev)  # the fuzz targets: clang and its libFuzzer runtime
    fi
    install_packages
    build
    log "tests"
    meson test -C build --print-errorlogs --num-processes "$(nproc)"
    if [ "${MODELREG_SANITIZE:-1}" != 0 ]; then
      log "tests again under AddressSanitizer + UndefinedBehaviorSanitizer"
      configure build/sanitize -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
      ninja -C build/sanitize -j"$(nproc)"
      ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        meson test -C build/sanitize --print-errorlogs --num-processes "$(nproc)" --timeout-multiplier 3
    fi
    if [ "${MODELREG_TSAN:-1}" != 0 ]; then
      # The hot-swap watcher and the embeddable server are the multi-threaded parts.
      log "the watcher and server tests under ThreadSanitizer (build/tsan)"
      configure build/tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false
      ninja -C build/tsan -j"$(nproc)" tests/active_watcher_test
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        meson test -C build/tsan --no-rebuild --print-errorlogs --timeout-multiplier 3 active_watcher
    fi
    if [ "${MODELREG_FUZZ:-1}" != 0 ]; then
      log "fuzzing: each libFuzzer target for 15 s (build/fuzz, clang; docs/fuzzing.md)"
      FUZZ_JOBS="$(nproc)" fuzz/run.sh 15
    fi
    ;;
  build)
    install_packages
    build
    ;;
  *)
    echo "usage: ./run.sh demo | test | build" >&2
    exit 2
    ;;
esac
