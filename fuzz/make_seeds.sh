#!/usr/bin/env bash
# fuzz/make_seeds.sh — regenerate the binary seeds (fuzz/corpus/archive_fuzz/*.mrm and
# fuzz/corpus/bundle_fuzz/*.mrb) with build/fuzz/fuzz/make_seeds, then shrink each bundle to
# 512-byte pages so the seeds stay small (a bundle is an SQLite file). Needs sqlite3.
# Run after a change to the archive or bundle format; the text seeds are maintained by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
ninja -C build/fuzz -j2 fuzz/make_seeds >/dev/null
build/fuzz/fuzz/make_seeds fuzz/corpus
for b in fuzz/corpus/bundle_fuzz/*.mrb; do
  sqlite3 "$b" "PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;" >/dev/null
  echo "$b: $(stat -c %s "$b") bytes"
done
