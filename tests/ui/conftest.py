"""Fixtures of the web UI's browser tests (tests/ui): a registry built with the modelreg command,
tokens, `modelreg ui` on 127.0.0.1 port 0, and one headless Chromium for the module.

Run by meson (test 'ui_browser') with MODELREG_BIN set. Debian's chromium, chromium-driver and
python3-selenium drive the browser; without them the suite skips — or fails where
MODELREG_REQUIRE_PYTHON_DEPS is set (run.sh), so that a missing browser never passes unnoticed.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

MODELREG = os.environ.get("MODELREG_BIN", "modelreg")
XSS = "<img src=x onerror=alert(1)>"


def require(what, found, why):
    if found:
        return
    if os.environ.get("MODELREG_REQUIRE_PYTHON_DEPS"):
        pytest.fail(f"{what} is required here (MODELREG_REQUIRE_PYTHON_DEPS): {why}")
    pytest.skip(f"{what} is not installed: {why}", allow_module_level=True)


def chromium_paths():
    """Debian's chromium and its driver, as found on PATH (None when not installed)."""
    return shutil.which("chromium"), shutil.which("chromedriver")


def new_browser(width=1280, height=900):
    """A headless Chromium driven by Selenium (Debian's packages); fails or skips as require() says."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        require("python3-selenium", False, str(e))
    browser, driver = chromium_paths()
    require("chromium", browser is not None, "no chromium on PATH (apt-get install chromium)")
    require("chromium-driver", driver is not None, "no chromedriver on PATH (apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def modelreg(db, *args, capture=False):
    r = subprocess.run([MODELREG, "--db", str(db), *args], check=True, timeout=60,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL, text=True)
    return r.stdout if capture else None


def f1_of(i):
    """f1 of fraud@i: distinct for i in 1..30 (7 and 30 are coprime)."""
    return round(0.60 + ((i * 7) % 30) / 100, 2)


def auc_of(i):
    return round(0.70 + i / 100, 2)


def build_registry(db, work):
    """fraud@1..30 (a lineage chain, fraud@10 also merged from fraud@5; fraud@3's notes and
    fraud@4's tag are markup; fraud@20 active, champion -> fraud@8; fraud@30 archived), other@1
    derived from fraud@3, and iris@1, a trained model with a probe."""
    blob = work / "model.bin"
    for i in range(1, 31):
        blob.write_bytes(b"model %d " % i * 50)
        args = ["register", "fraud", "--file", str(blob), "--format", "onnx", "--type", "GradientBoostedTrees",
                "--metric", f"f1={f1_of(i)}", "--metric", f"auc={auc_of(i)}",
                "--param", f"max_depth={3 + i % 4}", "--feature", "amount", "--feature", "hour:int32",
                "--tag", f"stage={'prod' if i % 5 == 0 else 'dev'}",
                "--dataset", f"s3://data/fraud-{i}.csv:train", "--notes", XSS if i == 3 else f"retrain {i}"]
        if i == 4:
            args += ["--tag", f"note={XSS}"]
        if i > 1:
            args += ["--parent", f"fraud@{i - 1}:retrained_from"]
        if i == 10:
            args += ["--parent", "fraud@5:merged_from"]
        modelreg(db, *args)
    modelreg(db, "promote", "fraud@20", "--reason", "first release")
    modelreg(db, "alias", "set", "fraud@8", "champion", "--reason", "best so far")
    modelreg(db, "archive", "fraud@30", "--reason", "bad data")
    blob.write_bytes(b"other model")
    modelreg(db, "register", "other", "--file", str(blob), "--metric", "f1=0.5", "--parent", "fraud@3:distilled_from")
    csv = work / "iris.csv"
    rows = ["a,b,y"] + [f"{x / 10},{(x * 7 % 13) / 10},{1 if x % 3 else 0}" for x in range(60)]
    csv.write_text("\n".join(rows) + "\n")
    modelreg(db, "train", "iris", "--csv", str(csv), "--target", "y", "--type", "logistic_regression", "--seed", "1")


class Server:
    def __init__(self, db, *extra):
        self.db = db
        self.proc = subprocess.Popen([MODELREG, "--db", str(db), "ui", "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=10) == 0


@pytest.fixture(scope="session")
def registry():
    work = Path(tempfile.mkdtemp(prefix="modelreg-ui-test-"))
    db = work / "reg.db"
    build_registry(db, work)
    tokens = {}
    for name, role, glob in (("alice", "promoter", None), ("rita", "reader", None), ("wendy", "writer", "other*")):
        args = ["token", "create", name, "--role", role] + (["--model", glob] if glob else [])
        tokens[name] = modelreg(db, *args, capture=True).strip().splitlines()[-1]
    yield {"db": db, "work": work, "tokens": tokens}
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def server(registry):
    s = Server(registry["db"])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def anonymous_server(registry):
    s = Server(registry["db"], "--anonymous-read")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def browser():
    driver = new_browser()
    yield driver
    driver.quit()


def cli_json(db, *args):
    return json.loads(modelreg(db, "--json", *args, capture=True))
