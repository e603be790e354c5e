"""The web UI of `modelreg ui` in a real browser (headless Chromium through Selenium).

Each test drives the pages as a person would — a token typed into the form, filters applied,
column headers clicked, dialogs filled in — and checks what the page shows against the
registry's own answers. The tests run in file order on one registry: later ones see the
promotions of earlier ones, and say so.
"""
import json
import re
import urllib.request

import pytest
from conftest import XSS, auc_of, cli_json, f1_of, modelreg, require

try:
    from selenium.common.exceptions import NoAlertPresentException, NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as e:
    require("python3-selenium", False, str(e))

WAIT = 5  # seconds any one thing may take to appear (a poll is 1.5 s)


def wait(browser, condition, timeout=WAIT):
    return WebDriverWait(browser, timeout, poll_frequency=0.05,
                         ignored_exceptions=[NoSuchElementException, StaleElementReferenceException]).until(condition)


def text_of(browser, css):
    return browser.find_element(By.CSS_SELECTOR, css).text


def go(browser, server, hash_):
    browser.get(f"{server.url}/#{hash_}")


def use_token(browser, server, token):
    """Forget any token, then type `token` into the form, as a person would."""
    browser.get(f"{server.url}/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{server.url}/")
    field = wait(browser, EC.presence_of_element_located((By.ID, "token-input")))
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#whoami:not([data-role=anonymous])")))


def kv(browser, table_id):
    """A key-value table of the version page as a dict of its cells' text."""
    return {tr.find_element(By.TAG_NAME, "th").text: tr.find_element(By.TAG_NAME, "td").text
            for tr in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tr")}


def version_rows(browser):
    return [int(tr.get_attribute("data-version")) for tr in browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")]


def newest_first(first, end):
    """Version numbers first..end-1 as the model page lists them by default: newest first."""
    return list(range(end - 1, first - 1, -1))


def wait_rows(browser, expected):
    wait(browser, lambda b: version_rows(b) == expected)
    return version_rows(browser)


def http(server, path, token=None, headers=None):
    req = urllib.request.Request(server.url + path, headers={**(headers or {}),
                                                             **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_assets_are_served_with_their_types_a_policy_and_etags(server):
    for path, ctype in (("/", "text/html; charset=utf-8"), ("/ui/app.js", "text/javascript; charset=utf-8"),
                        ("/ui/style.css", "text/css; charset=utf-8"), ("/ui/favicon.svg", "image/svg+xml")):
        status, headers, body = http(server, path)
        assert status == 200, path
        assert headers["Content-Type"] == ctype
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self';")
        assert "connect-src 'self'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-cache"
        assert body
        status, again, body = http(server, path, headers={"If-None-Match": headers["ETag"]})
        assert (status, body) == (304, b"")
        assert again["ETag"] == headers["ETag"]
    status, headers, body = http(server, "/ui/missing.js")
    assert status == 404 and headers["X-Content-Type-Options"] == "nosniff"
    # Nothing in the UI reaches another origin.
    for path in ("/", "/ui/app.js", "/ui/style.css"):
        text = http(server, path)[2].decode()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, path
        assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(", text), path


def test_whoami_names_the_token_and_what_it_may_do(server, anonymous_server, registry):
    status, _, body = http(server, "/api/v1/whoami", registry["tokens"]["wendy"])
    assert status == 200
    assert json.loads(body) == {"anonymous": False, "name": "wendy", "role": "writer", "model_glob": "other*",
                                "may": {"read": True, "write": True, "promote": False, "delete": False}}
    status, _, body = http(server, "/api/v1/whoami")
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthenticated"
    status, _, body = http(anonymous_server, "/api/v1/whoami")
    assert (status, json.loads(body)["anonymous"], json.loads(body)["may"]["promote"]) == (200, True, False)
    status, _, body = http(server, "/api/v1/whoami", "mrt_" + "0" * 64)
    assert status == 401 and json.loads(body)["error"]["code"] == "bad_token"
    document = json.loads(http(server, "/api/v1/openapi.json")[2])
    for path in ("/api/v1/whoami", "/api/v1/overview", "/api/v1/models/{model}/events",
                 "/api/v1/models/{model}/versions/{version}/probe"):
        assert "get" in document["paths"][path], path


def test_events_are_paged_newest_first(server, registry):
    token = registry["tokens"]["rita"]
    history = cli_json(registry["db"], "history", "fraud")
    status, headers, body = http(server, "/api/v1/models/fraud/events?limit=3", token)
    assert status == 200
    page = json.loads(body)
    assert page == list(reversed(history))[:3]
    assert headers["X-Next-Cursor"] == str(page[-1]["id"])
    status, _, body = http(server, f"/api/v1/models/fraud/events?limit=1000&before={page[-1]['id']}", token)
    assert json.loads(body) == list(reversed(history))[3:]
    status, _, body = http(server, "/api/v1/models/nope/events", token)
    assert status == 404
    status, _, body = http(server, "/api/v1/models/fraud/events?limit=0", token)
    assert status == 400 and "limit" in json.loads(body)["error"]["message"]
    status, _, body = http(server, "/api/v1/models/fraud/versions/10/neighbours?depth=1", token)
    assert status == 200
    assert json.loads(body) == {"ref": "fraud@10",
                                "ancestors": [{"child": "fraud@10", "parent": "fraud@5", "relation": "merged_from", "depth": 1},
                                              {"child": "fraud@10", "parent": "fraud@9", "relation": "retrained_from", "depth": 1}],
                                "descendants": [{"child": "fraud@11", "parent": "fraud@10", "relation": "retrained_from", "depth": 1}]}
    status, _, body = http(server, "/api/v1/models/fraud/versions/10/neighbours?depth=101", token)
    assert status == 400 and "depth" in json.loads(body)["error"]["message"]


def test_without_a_token_the_page_asks_for_one(browser, server):
    browser.get(f"{server.url}/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{server.url}/")
    message = wait(browser, EC.visibility_of_element_located((By.ID, "auth-needed")))
    assert "needs a token" in message.text
    assert browser.find_elements(By.ID, "token-input")


def test_models_list_shows_active_aliases_and_last_change(browser, server, registry):
    use_token(browser, server, registry["tokens"]["alice"])
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#models tr[data-model=fraud]")))
    assert text_of(browser, "#whoami") == "alice (promoter)"
    models = [tr.get_attribute("data-model") for tr in browser.find_elements(By.CSS_SELECTOR, "#models tbody tr")]
    assert models == ["fraud", "iris", "other"]
    row = "#models tr[data-model=fraud]"
    assert text_of(browser, f"{row} .active-version") == "20"
    assert text_of(browser, f"{row} .aliases") == "champion → 8"
    cells = browser.find_elements(By.CSS_SELECTOR, f"{row} td")
    assert [c.text for c in cells[3:5]] == ["30", "30"]
    assert "archive" in cells[5].text and "v30" in cells[5].text and "bad data" in cells[5].text


def test_filter_by_metric_tag_and_status(browser, server):
    go(browser, server, "/m/fraud")
    wait_rows(browser, newest_first(1, 30))  # ready versions, newest first; fraud@30 is archived
    where = browser.find_element(By.ID, "filter-where")
    where.clear()
    where.send_keys("f1>=0.8")
    browser.find_element(By.ID, "apply-filters").click()
    assert wait_rows(browser, [i for i in newest_first(1, 30) if f1_of(i) >= 0.8])
    go(browser, server, "/m/fraud?tag=stage%3Dprod")
    assert wait_rows(browser, [25, 20, 15, 10, 5])
    go(browser, server, "/m/fraud?where=f1%3E%3D0.8&where=auc%3E0.9")
    assert wait_rows(browser, [i for i in newest_first(1, 30) if f1_of(i) >= 0.8 and auc_of(i) > 0.9])
    go(browser, server, "/m/fraud?status=archived")
    assert wait_rows(browser, [30])
    go(browser, server, "/m/fraud?where=f1%3E%3D0.99")
    wait(browser, EC.presence_of_element_located((By.ID, "no-versions")))
    go(browser, server, "/m/fraud?where=f1~1")
    assert "where:" in wait(browser, EC.visibility_of_element_located((By.ID, "load-error"))).text


def test_sort_by_a_metric_both_ways(browser, server):
    go(browser, server, "/m/fraud")
    wait_rows(browser, newest_first(1, 30))
    assert browser.find_element(By.CSS_SELECTOR, "#versions th button[data-sort='#']").text == "Version ▼"
    browser.find_element(By.CSS_SELECTOR, "#versions th button[data-sort=f1]").click()
    by_f1 = sorted(range(1, 30), key=lambda i: -f1_of(i))
    assert wait_rows(browser, by_f1)
    values = [float(td.text) for td in browser.find_elements(By.CSS_SELECTOR, "#versions tbody td[data-metric=f1]")]
    assert values == sorted(values, reverse=True)
    browser.find_element(By.CSS_SELECTOR, "#versions th button[data-sort=f1]").click()
    assert wait_rows(browser, list(reversed(by_f1)))
    # Back to the version number: newest first, and again: oldest first (kept in the URL).
    browser.find_element(By.CSS_SELECTOR, "#versions th button[data-sort='#']").click()
    assert wait_rows(browser, newest_first(1, 30))
    browser.find_element(By.CSS_SELECTOR, "#versions th button[data-sort='#']").click()
    assert wait_rows(browser, list(range(1, 30)))
    assert "oldest=true" in browser.current_url
    assert browser.find_element(By.CSS_SELECTOR, "#versions th button[data-sort='#']").text == "Version ▲"

def test_pages_follow_the_api_cursor(browser, server):
    go(browser, server, "/m/fraud?status=all&limit=25")
    assert wait_rows(browser, newest_first(6, 31))
    assert not browser.find_element(By.ID, "prev-page").is_enabled()
    browser.find_element(By.ID, "next-page").click()
    assert wait_rows(browser, newest_first(1, 6))
    assert text_of(browser, "#page-number") == "page 2"
    assert not browser.find_element(By.ID, "next-page").is_enabled()
    browser.find_element(By.ID, "prev-page").click()
    assert wait_rows(browser, newest_first(6, 31))
    go(browser, server, "/m/fraud?status=all&limit=25&oldest=true")
    assert wait_rows(browser, list(range(1, 26)))
    browser.find_element(By.ID, "next-page").click()
    assert wait_rows(browser, list(range(26, 31)))
    # Sorted pages continue in the same order.
    go(browser, server, "/m/fraud?status=all&limit=25&order_by=f1")
    by_f1 = sorted(range(1, 31), key=lambda i: -f1_of(i))
    assert wait_rows(browser, by_f1[:25])
    browser.find_element(By.ID, "next-page").click()
    assert wait_rows(browser, by_f1[25:])


def test_chart_draws_the_chosen_metrics(browser, server):
    go(browser, server, "/m/fraud?limit=25")
    wait_rows(browser, newest_first(5, 30))  # the 25 newest ready versions
    series = lambda: [g.get_attribute("data-metric") for g in browser.find_elements(By.CSS_SELECTOR, "#metric-chart g.series")]
    assert series() == ["auc", "f1"]
    points = browser.find_elements(By.CSS_SELECTOR, "#metric-chart g.series[data-metric=f1] circle.point")
    assert [int(p.get_attribute("data-version")) for p in points] == list(range(5, 30))  # by number
    polyline = browser.find_element(By.CSS_SELECTOR, "#metric-chart g.series[data-metric=f1] polyline")
    assert len(polyline.get_attribute("points").split()) == 25
    # The highest f1 is drawn highest (smallest y).
    best = max(range(5, 30), key=f1_of)
    ys = {int(p.get_attribute("data-version")): float(p.get_attribute("cy")) for p in points}
    assert min(ys, key=ys.get) == best
    browser.find_element(By.CSS_SELECTOR, "#chart-metrics input[value=auc]").click()
    wait(browser, lambda b: series() == ["f1"])
    points = browser.find_elements(By.CSS_SELECTOR, "#metric-chart circle.point")
    points[0].click()
    wait(browser, lambda b: b.current_url.endswith("#/m/fraud/v/5"))


def test_version_page_shows_everything_and_lineage_clicks_through(browser, server):
    go(browser, server, "/m/fraud/v/10")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-ref"), "fraud@10"))
    assert kv(browser, "metrics") == {"auc": str(auc_of(10)), "f1": str(f1_of(10))}
    assert kv(browser, "params") == {"max_depth": "5"}
    assert kv(browser, "tags") == {"stage": "prod"}
    assert kv(browser, "metadata")["Format"] == "onnx"
    assert text_of(browser, "#notes") == "retrain 10"
    assert [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#features tbody td:nth-child(2)")] == ["amount", "hour"]
    assert "s3://data/fraud-10.csv" in browser.find_element(By.ID, "datasets").text
    assert "unsigned" in browser.find_element(By.ID, "signature").text
    assert "Compression ratio" in browser.find_element(By.ID, "sizes").text
    nodes = lambda: sorted(g.get_attribute("data-ref") for g in browser.find_elements(By.CSS_SELECTOR, "#lineage g.node"))
    # Three generations each way: parents 9 and 5 (merged), then 8 and 4, then 7 and 3; children 11..13.
    assert nodes() == sorted(f"fraud@{i}" for i in (3, 4, 5, 7, 8, 9, 10, 11, 12, 13))
    browser.find_element(By.ID, "lineage-more").click()
    wait(browser, lambda b: nodes() == sorted(f"fraud@{i}" for i in range(1, 17)))
    edges = browser.find_elements(By.CSS_SELECTOR, "#lineage line")
    assert len(edges) == 16  # 1->2 ... 15->16 and 5->10
    browser.find_element(By.CSS_SELECTOR, "#lineage g.node[data-ref='fraud@9']").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-ref"), "fraud@9"))
    go(browser, server, "/m/fraud/v/3")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-ref"), "fraud@3"))
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#lineage g.node[data-ref='other@1']"))).click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-ref"), "other@1"))


def test_probe_of_a_trained_model(browser, server, registry):
    status, _, body = http(server, "/api/v1/models/iris/versions/1/probe", registry["tokens"]["rita"])
    probe = json.loads(body)["probe"]
    assert status == 200 and len(probe["inputs"]) == len(probe["outputs"]) > 0
    assert all(len(row) == 2 for row in probe["inputs"]) and all(len(out) == 1 for out in probe["outputs"])
    go(browser, server, "/m/iris/v/1")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-ref"), "iris@1"))
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#probe thead th")]
    assert headers == ["a", "b", "saved output"]
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in browser.find_elements(By.CSS_SELECTOR, "#probe tbody tr")]
    assert len(rows) == len(probe["inputs"])
    for shown, inputs, outputs in zip(rows, probe["inputs"], probe["outputs"]):
        assert [float(x) for x in shown[:2]] == pytest.approx(inputs, rel=1e-5)
        assert float(shown[2]) == pytest.approx(outputs[0], rel=1e-5)
    assert http(server, "/api/v1/models/fraud/versions/1/probe", registry["tokens"]["rita"])[2] == \
        b'{"probe":null,"ref":"fraud@1"}'
    go(browser, server, "/m/fraud/v/1")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-ref"), "fraud@1"))
    assert text_of(browser, "#probe").startswith("No probe")


def test_markup_in_notes_and_tags_shows_as_text(browser, server):
    go(browser, server, "/m/fraud/v/3")
    notes = wait(browser, EC.presence_of_element_located((By.ID, "notes")))
    assert notes.text == XSS
    assert browser.find_elements(By.CSS_SELECTOR, "#notes img, main img") == []
    go(browser, server, "/m/fraud?tag=note")
    wait_rows(browser, [4])
    badges = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#versions tr[data-version='4'] .tags .badge")]
    assert badges == [f"note={XSS}", "stage=dev"]
    assert browser.find_elements(By.CSS_SELECTOR, "#versions img") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text


def test_compare_two_versions(browser, server):
    go(browser, server, "/m/fraud")
    wait_rows(browser, newest_first(1, 30))
    for v in (4, 12):
        browser.find_element(By.CSS_SELECTOR, f"#versions tr[data-version='{v}'] input.pick").click()
    browser.find_element(By.ID, "compare-button").click()
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#compare-metrics tr[data-metric=f1]")))
    assert browser.current_url.endswith("#/m/fraud/compare?a=4&b=12")
    expected = cli_json(server.db, "compare", "fraud@4", "fraud@12")
    for row in expected["metrics"]:
        cells = browser.find_elements(By.CSS_SELECTOR, f"#compare-metrics tr[data-metric={row['metric']}] td")
        assert float(cells[1].text) == row["a"] and float(cells[2].text) == row["b"]
        assert float(cells[3].get_attribute("data-difference")) == pytest.approx(row["difference"])
        assert "better" in cells[3].get_attribute("class") if row["improvement"] > 0 else "worse" in cells[3].get_attribute("class")
    assert "fraud@4" in text_of(browser, "#compare-side") and "fraud@12" in text_of(browser, "#compare-side")


def active_of(db, model="fraud"):
    return next(m for m in cli_json(db, "list") if m["model"] == model)["active_version"]


def open_action(browser, button):
    browser.find_element(By.ID, button).click()
    return wait(browser, EC.visibility_of_element_located((By.ID, "action-dialog")))


def test_promote_with_a_reason(browser, server, registry):
    db = registry["db"]
    assert active_of(db) == 20
    go(browser, server, "/m/fraud/v/4")
    wait(browser, EC.element_to_be_clickable((By.ID, "promote-button")))
    open_action(browser, "promote-button")
    browser.find_element(By.ID, "action-reason").send_keys("better recall <b>on</b> October")
    browser.find_element(By.ID, "action-submit").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "notice"), "promoted fraud: @4 is now active (was 20)"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-status"), "active"))
    assert active_of(db) == 4
    last = cli_json(db, "history", "fraud")[-1]
    assert (last["kind"], last["actor"], last["reason"], last["to_version"]) == (
        "promote", "alice", "better recall <b>on</b> October", 4)
    go(browser, server, "/m/fraud")
    first = wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#timeline li")))
    assert "alice" in first.text and "better recall <b>on</b> October" in first.text


def test_a_failing_guard_is_shown_and_changes_nothing(browser, server, registry):
    db = registry["db"]
    assert active_of(db) == 4 and f1_of(9) < f1_of(4)
    before = cli_json(db, "history", "fraud")
    go(browser, server, "/m/fraud/v/9")
    wait(browser, EC.element_to_be_clickable((By.ID, "promote-button")))
    open_action(browser, "promote-button")
    Select(browser.find_element(By.ID, "action-require_better")).select_by_value("f1")
    browser.find_element(By.ID, "action-reason").send_keys("try it")
    browser.find_element(By.ID, "action-submit").click()
    refusal = wait(browser, EC.visibility_of_element_located((By.ID, "action-refusal")))
    assert refusal.text.startswith("Refused (409 conflict): ")
    assert "f1" in refusal.text and str(f1_of(9)) in refusal.text
    assert browser.find_element(By.ID, "action-dialog").is_displayed()
    browser.find_element(By.ID, "action-cancel").click()
    assert active_of(db) == 4
    assert cli_json(db, "history", "fraud") == before


def test_tag_and_archive_ask_for_a_reason(browser, server, registry):
    db = registry["db"]
    go(browser, server, "/m/fraud/v/11")
    wait(browser, EC.element_to_be_clickable((By.ID, "tag-button")))
    open_action(browser, "tag-button")
    browser.find_element(By.ID, "action-set").send_keys("reviewed=yes")
    browser.find_element(By.ID, "action-reason").send_keys("looked at it")
    browser.find_element(By.ID, "action-submit").click()
    wait(browser, lambda b: kv(b, "tags") == {"reviewed": "yes", "stage": "dev"})
    open_action(browser, "archive-button")
    browser.find_element(By.ID, "action-reason").send_keys("superseded")
    browser.find_element(By.ID, "action-submit").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-status"), "archived"))
    history = cli_json(db, "history", "fraud")
    assert [(e["kind"], e["actor"], e["reason"]) for e in history[-2:]] == [
        ("tag", "alice", "looked at it"), ("archive", "alice", "superseded")]
    # Archiving the active version is refused, and the refusal is shown.
    go(browser, server, "/m/fraud/v/4")
    wait(browser, EC.element_to_be_clickable((By.ID, "archive-button")))
    open_action(browser, "archive-button")
    browser.find_element(By.ID, "action-reason").send_keys("oops")
    browser.find_element(By.ID, "action-submit").click()
    refusal = wait(browser, EC.visibility_of_element_located((By.ID, "action-refusal")))
    assert refusal.text.startswith("Refused (409 conflict): ")
    browser.find_element(By.ID, "action-cancel").click()
    assert active_of(db) == 4


def test_rollback_asks_for_a_reason_and_the_timeline_pages_back(browser, server, registry):
    db = registry["db"]
    modelreg(db, "promote", "fraud@13", "--reason", "to roll back")
    go(browser, server, "/m/fraud")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "active-version"), "13"))
    open_action(browser, "rollback-button")
    browser.find_element(By.ID, "action-reason").send_keys("13 misbehaves")
    browser.find_element(By.ID, "action-submit").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "notice"), "rolled back fraud: now @4 (was 13)"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "active-version"), "4"))
    last = cli_json(db, "history", "fraud")[-1]
    assert (last["kind"], last["actor"], last["reason"], last["to_version"]) == ("rollback", "alice", "13 misbehaves", 4)
    # The timeline: 20 events, newest first, then 20 more on request, down to the first.
    history = cli_json(db, "history", "fraud")
    items = lambda: [int(li.get_attribute("data-event")) for li in browser.find_elements(By.CSS_SELECTOR, "#timeline li")]
    wait(browser, lambda b: items() == [e["id"] for e in reversed(history)][:20])
    browser.find_element(By.ID, "older-events").click()
    wait(browser, lambda b: items() == [e["id"] for e in reversed(history)][:40])
    while browser.find_element(By.ID, "older-events").is_displayed():
        count = len(items())
        browser.find_element(By.ID, "older-events").click()
        wait(browser, lambda b: len(items()) > count)
    assert items() == [e["id"] for e in reversed(history)]


def test_a_promotion_by_another_process_shows_up(browser, server, registry):
    db = registry["db"]
    go(browser, server, "/m/fraud")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "active-version"), "4"))
    modelreg(db, "promote", "fraud@7", "--reason", "from the shell")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "active-version"), "7"))
    # The summary and the timeline are redrawn by separate requests: wait for the timeline's own.
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#timeline li:first-child"), "from the shell"))
    assert "promote" in browser.find_element(By.CSS_SELECTOR, "#timeline li:first-child").text
    go(browser, server, "/m/fraud/v/7")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-status"), "active"))
    modelreg(db, "alias", "set", "fraud@7", "canary", "--reason", "canary")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-status"), "canary"))
    go(browser, server, "/")
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#models tr[data-model=fraud] .active-version"), "7"))
    modelreg(db, "rollback", "fraud", "--reason", "back")
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#models tr[data-model=fraud] .active-version"), "4"))


def test_a_reader_sees_no_actions(browser, server, registry):
    use_token(browser, server, registry["tokens"]["rita"])
    assert text_of(browser, "#whoami") == "rita (reader)"
    go(browser, server, "/m/fraud/v/5")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-ref"), "fraud@5"))
    assert browser.find_elements(By.CSS_SELECTOR, "#version-actions button") == []
    go(browser, server, "/m/fraud")
    wait_rows(browser, [i for i in newest_first(1, 30) if i != 11])
    assert browser.find_elements(By.CSS_SELECTOR, "#model-actions button") == []


def test_a_token_for_other_models_sees_only_them(browser, server, registry):
    use_token(browser, server, registry["tokens"]["wendy"])
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#models tr[data-model=other]")))
    assert [tr.get_attribute("data-model") for tr in browser.find_elements(By.CSS_SELECTOR, "#models tbody tr")] == ["other"]
    go(browser, server, "/m/other/v/1")
    wait(browser, EC.element_to_be_clickable((By.ID, "tag-button")))
    assert [b.get_attribute("id") for b in browser.find_elements(By.CSS_SELECTOR, "#version-actions button")] == ["tag-button"]
    go(browser, server, "/m/fraud")
    assert "does not match" in wait(browser, EC.visibility_of_element_located((By.ID, "auth-needed"))).text


def test_anonymous_reads_need_no_token_and_show_no_actions(browser, anonymous_server):
    # A stored token the server refuses is named as such, and can be forgotten.
    browser.get(f"{anonymous_server.url}/")
    browser.execute_script("sessionStorage.setItem('modelreg.token', 'mrt_' + '0'.repeat(64))")
    browser.refresh()
    assert "unknown or revoked" in wait(browser, EC.visibility_of_element_located((By.ID, "auth-error"))).text
    browser.find_element(By.ID, "forget-token").click()
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#models tr[data-model=fraud]")))
    assert browser.execute_script("return sessionStorage.getItem('modelreg.token')") is None
    go(browser, anonymous_server, "/m/fraud/v/5")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "version-ref"), "fraud@5"))
    assert text_of(browser, "#whoami") == "anonymous (read only)"
    assert browser.find_elements(By.CSS_SELECTOR, "#version-actions button") == []
    # Every request the pages made went to this server.
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(anonymous_server.url + "/") for u in urls), urls


def test_webhooks_and_their_delivery_attempts_are_shown(browser, server, registry):
    import os
    import socket
    db, work = registry["db"], registry["work"]
    with socket.socket() as s:  # a port nobody listens on: every attempt fails with a connection error
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = work / "hook.secret"
    secret.write_bytes(b"a secret of more than sixteen bytes")
    os.chmod(secret, 0o600)
    modelreg(db, "webhook", "add", f"http://127.0.0.1:{port}/hook?x=<b>", "--events", "promote",
             "--secret-file", str(secret))
    use_token(browser, server, registry["tokens"]["rita"])
    go(browser, server, "/webhooks")
    section = wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "section.webhook")))
    assert f"http://127.0.0.1:{port}/hook?x=<b>" in section.find_element(By.CSS_SELECTOR, ".url").text
    assert "events: promote" in section.text
    modelreg(db, "promote", "fraud@6", "--reason", "for the webhook")
    row = wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "section.webhook table.deliveries tbody tr")),
               timeout=15)
    assert "fraud" in row.text and "promote" in row.text
    assert row.find_element(By.CSS_SELECTOR, ".error").text != ""  # the connection error, as text
    assert row.get_attribute("data-delivery")
