#!/usr/bin/env bash
# A program outside the tree builds against the installed library with
# `pkg-config --cflags --libs modelreg`, and runs.
#   pkgconfig_test.sh BUILD_DIR
set -euo pipefail
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
pc=$(find "$dest" -name modelreg.pc -print -quit)
[ -n "$pc" ] || { echo "modelreg.pc was not installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$dest

cat > "$dest/outside.cpp" <<'CPP'
#include <modelreg/registry.hpp>
#include <cstdio>
int main(int, char** argv) {
  modelreg::Registry reg(argv[1]);
  modelreg::NewVersion spec;
  spec.model = "outside";
  spec.format = "bytes";
  auto v = reg.register_bytes(spec, "hello from outside the tree");
  reg.promote(modelreg::ModelRef::parse("outside@1"));
  bool same = reg.load_bytes(modelreg::ModelRef::parse("outside")) == "hello from outside the tree";
  std::printf("%s %s\n", v.ref_string().c_str(), same ? "ok" : "mismatch");
  return same ? 0 : 1;
}
CPP
# shellcheck disable=SC2046
c++ -std=c++20 "$dest/outside.cpp" -o "$dest/outside" $(pkg-config --cflags --libs modelreg)
libdir=$(dirname "$(find "$dest" -name 'libmodelreg.so*' -print -quit)")
out=$(LD_LIBRARY_PATH=$libdir "$dest/outside" "$dest/outside.db")
echo "$out"
[ "$out" = "outside@1 ok" ]
