#!/usr/bin/env bash
# tools/check_layers.py refuses an include past a file's layer (and accepts the tree as it is).
# Usage: layer_check_test.sh SOURCE_ROOT
set -euo pipefail
root=$1
check=$root/tools/check_layers.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect_refused LAYER FILE_CONTENT NEEDLE: a file of LAYER with that content is refused, naming NEEDLE.
expect_refused() {
  local layer=$1 content=$2 needle=$3
  mkdir -p "$tmp/lib/src/$layer"
  printf '%s\n' "$content" > "$tmp/lib/src/$layer/probe.cpp"
  if python3 "$check" "$tmp/stamp" "$tmp/lib/src/$layer/probe.cpp" 2> "$tmp/err"; then
    echo "FAIL: $layer/ accepted: $content"; fails=$((fails + 1))
  elif ! grep -qF "$needle" "$tmp/err"; then
    echo "FAIL: $layer/ refused '$content' without naming '$needle':"; cat "$tmp/err"; fails=$((fails + 1))
  fi
}
expect_accepted() {
  local layer=$1 content=$2
  mkdir -p "$tmp/lib/src/$layer"
  printf '%s\n' "$content" > "$tmp/lib/src/$layer/probe.cpp"
  if ! python3 "$check" "$tmp/stamp" "$tmp/lib/src/$layer/probe.cpp" 2> "$tmp/err"; then
    echo "FAIL: $layer/ refused '$content':"; cat "$tmp/err"; fails=$((fails + 1))
  fi
}

expect_refused models '#include <sqlite3.h>' 'models/ may not include <sqlite3.h>'
expect_refused models '#include <SQLiteCpp/Database.h>' 'SQLiteCpp/Database.h'
expect_refused models '#include <zstd.h>' 'zstd.h'
expect_refused models '#include <openssl/evp.h>' 'openssl/evp.h'
expect_refused models '#include "store/database.hpp"' 'private to store/'
expect_refused models '#include "modelreg/registry.hpp"' 'a store/ header'
expect_refused core '#include <boost/archive/basic_archive.hpp>' 'core/ may not include'
expect_refused core '#include "models/model_io.hpp"' 'private to models/'
expect_refused serving '#include "store/registry_impl.hpp"' 'use the public API'
expect_refused serving '#include <sqlite3.h>' 'serving/ uses only the public Registry API'
expect_refused store '#include "serving/watcher.hpp"' 'private to serving/'
expect_refused store '#include <httplib.h>' 'an unknown library'
expect_refused models '#include "tree_links.hpp"' 'include private headers as'
expect_accepted models '#include <vector>
#include <fmt/format.h>
#include <boost/serialization/string.hpp>
#include "core/parallel.hpp"
#include "modelreg/model.hpp"'
expect_accepted store '#include <sqlite3.h>
#include "models/archive_header.hpp"
#include "modelreg/registry.hpp"'
expect_accepted serving '#include "modelreg/registry.hpp"
#include "core/text_format.hpp"'

# The library as it is keeps to its layers.
mapfile -t files < <(find "$root/lib/src" "$root/lib/include/modelreg" -name '*.cpp' -o -name '*.hpp')
if ! python3 "$check" "$tmp/stamp" "${files[@]}"; then
  echo "FAIL: the library breaks its layering"; fails=$((fails + 1))
fi

passed=19
[ "$fails" -eq 0 ] || passed=$((passed - fails))
echo "$passed passed, $fails failed"
[ "$fails" -eq 0 ]
