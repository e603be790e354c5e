#!/usr/bin/python3
"""The web UI at scale: how long a model with 100,000 versions takes to become usable.

Usage: bench/ui_bench.py --modelreg BUILD/registry-cli/modelreg --ui-registry BUILD/bench/ui_registry
                         [--work DIR] [--versions N] [--runs R]

Builds (once; cached as DIR/ui-N.db) a registry with one model `big` of N versions (default
100,000; bench/ui_registry.cpp), starts `modelreg ui --anonymous-read --port 0` on it and loads
pages in Debian's headless Chromium (the browser tests' driver, tests/ui/conftest.py), R times
each (default 7), reporting the median and the range of:
  - usable: from the start of navigation (performance.now() = 0) until the versions table has its
    first rows AND the metric chart has drawn its lines — seen by a MutationObserver installed
    before the page's own script runs (CDP Page.addScriptToEvaluateOnNewDocument);
  - the same page ordered by a metric (f1), and a version's page;
and the API's own time for the calls behind them (urllib, wall clock).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "ui"))

OBSERVER = """
window.__usable = null;
const ready = location.hash.includes('/v/') ? ['#version-ref', '#lineage svg'] : ['#versions tbody tr', '#metric-chart polyline'];
new MutationObserver((_, obs) => {
  if (window.__usable === null && document.querySelector(ready[0]) && document.querySelector(ready[1])) {
    window.__usable = performance.now();
    obs.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""


def median_range(xs):
    return f"{statistics.median(xs):7.1f} ms  ({min(xs):.1f}–{max(xs):.1f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modelreg", required=True)
    p.add_argument("--ui-registry", required=True)
    p.add_argument("--work", default="/tmp/modelreg-bench/ui")
    p.add_argument("--versions", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=7)
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    db = work / f"ui-{a.versions}.db"
    if not db.exists():
        partial = work / f"ui-{a.versions}.partial.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(partial) + suffix).unlink(missing_ok=True)
        t = time.monotonic()
        subprocess.run([a.ui_registry, str(partial), str(a.versions)], check=True)
        # Checkpoint and close before the rename (the -wal belongs to the old name).
        subprocess.run([a.modelreg, "--db", str(partial), "sql", "SELECT count(*) FROM versions"], check=True,
                       stdout=subprocess.DEVNULL)
        os.rename(partial, db)
        print(f"built {db} in {time.monotonic() - t:.0f} s")
    os.environ["MODELREG_BIN"] = os.path.abspath(a.modelreg)
    import conftest
    conftest.MODELREG = os.environ["MODELREG_BIN"]
    server = conftest.Server(db, "--anonymous-read")
    browser = conftest.new_browser(1280, 900)
    try:
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER})

        def load(page):
            browser.get("about:blank")
            browser.get(f"{server.url}/#{page}")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                v = browser.execute_script("return window.__usable")
                if v is not None:
                    return v
                time.sleep(0.01)
            raise RuntimeError(f"{page} did not become usable within 60 s")

        def api_ms(path):
            t = time.perf_counter()
            with urllib.request.urlopen(server.url + path, timeout=60) as r:
                r.read()
            return (time.perf_counter() - t) * 1000

        load("/m/big")  # warm the page cache of the database file and the browser's assets
        results = {}
        cases = [
            ("model page, by number", "/m/big"),
            ("model page, ordered by f1", "/m/big?order_by=f1"),
            ("version page (big@50000)", "/m/big/v/50000"),
        ]
        for name, page in cases:
            results[name] = [load(page) for _ in range(a.runs)]
        apis = {
            "GET versions?limit=50": "/api/v1/models/big/versions?limit=50",
            "GET versions?limit=50&order_by=f1": "/api/v1/models/big/versions?limit=50&order_by=f1",
            "GET versions?limit=50&cursor=99000": "/api/v1/models/big/versions?limit=50&cursor=99000",
            "GET events?limit=20": "/api/v1/models/big/events?limit=20",
            "GET models/big/aliases": "/api/v1/models/big/aliases",
            "GET models": "/api/v1/models",
            "GET overview": "/api/v1/overview",
            "GET versions/50000": "/api/v1/models/big/versions/50000",
            "GET versions/50000/lineage": "/api/v1/models/big/versions/50000/lineage",
            "GET history (all events)": "/api/v1/models/big/history",
        }
        api_results = {name: [api_ms(path) for _ in range(a.runs)] for name, path in apis.items()}
        print(f"{a.versions} versions of one model, {a.runs} runs each, headless Chromium "
              f"{browser.capabilities.get('browserVersion')}")
        print("page usable (first rows and chart drawn; version page: header and lineage)")
        for name, xs in results.items():
            print(f"  {name:34} {median_range(xs)}")
        print("API calls (wall clock from a local client)")
        for name, xs in api_results.items():
            print(f"  {name:34} {median_range(xs)}")
        print(json.dumps({"pages": results, "api": api_results}))
    finally:
        browser.quit()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
