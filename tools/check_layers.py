#!/usr/bin/env python3
"""Refuses a build whose library files reach past their layer (DESIGN.md, "Layers").

Usage: check_layers.py STAMP FILE...
Each FILE is a source or header of lib/src/<layer>/ or a public header lib/include/modelreg/*.hpp.
Every `#include` it makes must be allowed for its layer: private headers of its own layer or one
below, public headers of its own layer or one below, and only the third-party headers its layer
links. On success it writes STAMP (a generated header that the layer libraries depend on); on a
violation it prints `file:line: ...` for each and exits 1, so the build stops there.
"""
import os
import re
import sys

LAYERS = ["core", "models", "store", "serving"]

# The layer each public header belongs to.
PUBLIC = {
    "error.hpp": "core", "export.hpp": "core", "progress.hpp": "core", "time_format.hpp": "core",
    "matrix.hpp": "models", "model.hpp": "models", "tree.hpp": "models",
    "logistic_regression.hpp": "models", "decision_tree.hpp": "models", "random_forest.hpp": "models",
    "gradient_boosted_trees.hpp": "models", "training.hpp": "models", "model_archive.hpp": "models",
    "model_serialization.hpp": "models", "labeled_data.hpp": "models", "metrics.hpp": "models",
    "hyperparameters.hpp": "models", "xgboost.hpp": "models", "linear_regression.hpp": "models",
    "sklearn.hpp": "models",
    "checksum.hpp": "store", "metadata.hpp": "store", "model_ref.hpp": "store", "registry.hpp": "store",
    "signing.hpp": "store", "training_run.hpp": "store", "access.hpp": "store",
    "xgboost_import.hpp": "store", "webhooks.hpp": "store",
    "active_watcher.hpp": "serving", "model_server.hpp": "serving", "model_repository.hpp": "serving",
}

# Third-party headers (by the first path component of a <...> include) and the lowest layer
# that may use each. Anything else in <...> must be a standard or POSIX header (no slash, or
# sys/...).
THIRD_PARTY = {
    "fmt": "core",
    "boost": "models", "xxhash.h": "models",
    "sqlite3.h": "store", "SQLiteCpp": "store", "zstd.h": "store", "openssl": "store",
    "nlohmann": "models",  # models/: XGBoost's JSON and UBJSON model files
}
# Serving sits on the public Registry API: it may not use the storage libraries even though it is
# above store/, nor store's private headers.
# C and POSIX headers the library may use in any layer (C++ standard headers have no ".h").
SYSTEM_HEADERS = {"unistd.h", "fcntl.h", "pwd.h", "malloc.h", "strings.h", "poll.h", "signal.h", "time.h", "fnmatch.h"}
SERVING_FORBIDDEN = {"sqlite3.h", "SQLiteCpp", "zstd.h", "openssl", "nlohmann", "boost", "xxhash.h"}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(path):
    parts = os.path.normpath(path).split(os.sep)
    if "include" in parts and parts[-2] == "modelreg":
        name = parts[-1]
        if name not in PUBLIC:
            return None, f"public header {name} has no layer: add it to PUBLIC in {sys.argv[0]}"
        return PUBLIC[name], None
    for layer in LAYERS:
        if layer in parts[:-1]:
            return layer, None
    return None, "not in lib/src/<core|models|store|serving>/ nor lib/include/modelreg/"


def rank(layer):
    return LAYERS.index(layer)


def check(path):
    layer, problem = layer_of(path)
    if problem:
        return [f"{path}:1: {problem}"]
    errors = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            m = INCLUDE.match(line)
            if not m:
                continue
            quote, target = m.groups()
            head = target.split("/")[0]
            closing = ">" if quote == "<" else '"'
            where = f"{path}:{number}: {layer}/ may not include {quote}{target}{closing}"
            if head == "modelreg":
                owner = PUBLIC.get(target.split("/")[-1])
                if owner is None:
                    errors.append(f"{path}:{number}: unknown public header {target}")
                elif rank(owner) > rank(layer):
                    errors.append(f"{where} (a {owner}/ header: a layer uses only the layers below it)")
            elif head in LAYERS:
                if rank(head) > rank(layer) or (layer == "serving" and head == "store"):
                    errors.append(f"{where} (private to {head}/; use the public API)")
            elif head in THIRD_PARTY:
                if rank(THIRD_PARTY[head]) > rank(layer) or (layer == "serving" and head in SERVING_FORBIDDEN):
                    errors.append(f"{where} (only {THIRD_PARTY[head]}/ and the layers above it link that library)"
                                  if layer != "serving" else
                                  f"{where} (serving/ uses only the public Registry API)")
            elif quote == '"':
                errors.append(f"{where} (include private headers as \"<layer>/<file>.hpp\")")
            elif not (head == "sys" or ("/" not in target and ("." not in target or target in SYSTEM_HEADERS))):
                errors.append(f"{where} (an unknown library: add it to THIRD_PARTY in {sys.argv[0]} with "
                              "the lowest layer that may link it)")
    return errors


def main():
    stamp, files = sys.argv[1], sys.argv[2:]
    errors = [e for path in files for e in check(path)]
    if errors:
        sys.stderr.write("\n".join(errors) + "\nlayering violated: see DESIGN.md, \"Layers\"\n")
        return 1
    with open(stamp, "w", encoding="utf-8") as f:
        f.write(f"// Generated by check_layers.py: {len(files)} files keep to their layers.\n#pragma once\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
