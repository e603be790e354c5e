#!/usr/bin/python3
"""Screenshots of the web UI's main pages for the README (docs/ui-*.png).

Usage: tools/ui_screenshots.py --modelreg BUILD/registry-cli/modelreg [--out docs]

Builds the browser tests' registry (tests/ui/conftest.py: fraud@1..30 with metrics, tags, lineage,
aliases, an archived version; other@1; iris@1 with a probe), starts `modelreg ui --port 0` with a
promoter token, and saves the models page, a model's page, a version with its lineage and a
comparison, each as wide as a laptop screen and as tall as the page, from Debian's headless
Chromium (the tests' driver).
"""
import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "ui"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modelreg", required=True, help="the modelreg binary")
    parser.add_argument("--out", default=str(HERE.parent / "docs"), help="where the PNG files go (default docs/)")
    args = parser.parse_args()
    os.environ["MODELREG_BIN"] = os.path.abspath(args.modelreg)
    import conftest  # noqa: E402 (MODELREG_BIN must be set first)
    conftest.MODELREG = os.environ["MODELREG_BIN"]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    work = Path(tempfile.mkdtemp(prefix="modelreg-ui-shots-"))
    server = browser = None
    try:
        db = work / "reg.db"
        conftest.build_registry(db, work)
        token = conftest.modelreg(db, "token", "create", "alice", "--role", "promoter", capture=True).strip().splitlines()[-1]
        conftest.modelreg(db, "promote", "fraud@25", "--reason", "October retrain: +2 points of recall")
        server = conftest.Server(db)
        browser = conftest.new_browser(1280, 900)
        browser.get(server.url + "/")
        browser.execute_script("sessionStorage.setItem('modelreg.token', arguments[0])", token)
        browser.refresh()  # the page asks who the token is when it loads
        shots = [
            ("ui-models.png", "/", (By.CSS_SELECTOR, "#models tbody tr")),
            ("ui-model.png", "/m/fraud?limit=25", (By.CSS_SELECTOR, "#timeline li")),
            ("ui-version.png", "/m/fraud/v/10", (By.CSS_SELECTOR, "#lineage g.node")),
            ("ui-compare.png", "/m/fraud/compare?a=20&b=25", (By.CSS_SELECTOR, "#compare-metrics tbody tr")),
        ]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, page, ready in shots:
            browser.set_window_size(1280, 900)
            browser.get(f"{server.url}/#{page}")
            WebDriverWait(browser, 10).until(EC.presence_of_element_located(ready))
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(1280, min(max(height + 160, 600), 3200))  # the window's own bars take ~100 px
            WebDriverWait(browser, 10).until(EC.presence_of_element_located(ready))
            browser.save_screenshot(str(out / name))
            print(out / name)
    finally:
        if browser:
            browser.quit()
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
