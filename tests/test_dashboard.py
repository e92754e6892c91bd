"""The dashboard: sign-in (master and viewer keys, signed cookies, cross-site refusals), its API
answering with /v1/usage's own numbers, latency percentiles and errors by fault from the
rollups, the ledger's schema migration, and the page itself in a real browser (Playwright
driving Debian's Chromium): totals equal /v1/usage, a filter, a drill-down, a screenshot."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from gateway.metering.row import EDGES_MS, latency_bucket, percentile
from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, write_config
from tests.mock_openai import MockOpenAI

VIEWER_KEY = "gw-viewer-key-for-tests"
ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
CHROMIUM = "/usr/bin/chromium"
CONFIG = """
server: {{master_key: env:TEST_MASTER_KEY}}
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{mock}/v1"}}
models:
  - name: chat
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: cheap
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: broken
    targets: [{{provider: openai, model: status-503}}]
usage: {{flush_interval: 0.2}}
governance:
  keys:
    - {{id: search-key, key: env:TEST_VIRTUAL_KEY, name: search, team: core, max_budget: 5}}
  teams:
    core: {{max_budget: 20}}
dashboard: {{viewer_key: env:TEST_VIEWER_KEY, refresh_seconds: 2}}
"""
VIRTUAL_KEY = "sk-gw-dashboard-test-virtual-key-0001"


@pytest.fixture(scope="module")
def board(impl: str, mock: MockOpenAI) -> Iterator[Gateway]:
    env = {
        "TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY,
        "TEST_VIEWER_KEY": VIEWER_KEY, "TEST_VIRTUAL_KEY": VIRTUAL_KEY,
    }  # fmt: skip
    gw = start_gateway(impl, ["--config", str(write_config(CONFIG.format(mock=mock.url)))], env)
    client = openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0)
    virtual = openai.OpenAI(base_url=gw.v1, api_key=VIRTUAL_KEY, max_retries=0)
    try:
        for n in range(6):
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"hello {n}"}],
                extra_headers={"x-gateway-metadata": '{"feature": "search", "user": "ann"}'},
            )  # fmt: skip
        for n in range(3):
            virtual.chat.completions.create(
                model="cheap", messages=[{"role": "user", "content": f"hi {n}"}]
            )
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="broken", messages=[{"role": "user", "content": "x"}]
            )
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="chat", messages="not a list")  # type: ignore[arg-type]
    finally:
        client.close()
        virtual.close()
    yield gw
    gw.stop()


@contextmanager
def sign_in(gateway: Gateway, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        reply = client.post("/dashboard/login", json={"key": key})
        assert reply.status_code == 200, reply.text
        yield client


def test_the_page_asks_to_sign_in_and_is_locked_down(board: Gateway) -> None:
    page = httpx.get(f"{board.url}/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="login-form"' in page.text and 'id="kpi-cost"' not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    api = httpx.get(f"{board.url}/dashboard/api/usage")
    assert api.status_code == 401 and api.json()["error"]["code"] == "not_signed_in"
    for path in ("/dashboard/static/../routes.py", "/dashboard/static/%2e%2e/routes.py",
                 "/dashboard/static/", "/dashboard/static/session.py"):  # fmt: skip
        assert httpx.get(f"{board.url}{path}").status_code == 404, path
    js = httpx.get(f"{board.url}/dashboard/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in js.text  # client strings only ever become text nodes


def test_sign_in_sets_a_strict_httponly_cookie(board: Gateway) -> None:
    wrong = httpx.post(f"{board.url}/dashboard/login", json={"key": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "invalid_request_error"
    assert "set-cookie" not in wrong.headers and "nope" not in wrong.text
    form = httpx.post(f"{board.url}/dashboard/login", data={"key": MASTER_KEY})
    assert form.status_code == 200 and form.json()["role"] == "admin"
    cookie = form.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    assert MASTER_KEY not in cookie
    with sign_in(board, MASTER_KEY) as client:
        assert 'id="kpi-cost"' in client.get("/dashboard").text
        assert client.get("/dashboard/api/config").json()["role"] == "admin"
        # The cookie opens the dashboard's read-only API and nothing else.
        assert client.get("/v1/usage").status_code == 401
        assert client.get("/admin/keys").status_code == 401
        client.post("/dashboard/logout")
        assert client.get("/dashboard/api/usage").status_code == 401


def test_a_tampered_or_foreign_cookie_is_refused(board: Gateway) -> None:
    with sign_in(board, VIEWER_KEY) as client:
        value = client.cookies["gateway_session"]
        assert value.split(".")[1] == "viewer"
        forged = value.replace(".viewer.", ".admin.")
        for bad in (forged, value[:-1] + ("0" if value[-1] != "0" else "1"), "v1.admin.9999999999.00.00"):
            reply = httpx.get(
                f"{board.url}/dashboard/api/config", cookies={"gateway_session": bad}
            )
            assert reply.status_code == 401, bad
        assert client.get("/dashboard/api/config").json()["role"] == "viewer"
    # The viewer key opens the dashboard only: never the usage or admin API.
    viewer = {"authorization": f"Bearer {VIEWER_KEY}"}
    assert httpx.get(f"{board.url}/v1/usage", headers=viewer).status_code == 401
    assert httpx.get(f"{board.url}/dashboard/api/config", headers=viewer).status_code == 200


def test_sign_in_from_another_site_is_refused(board: Gateway) -> None:
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        reply = httpx.post(f"{board.url}/dashboard/login", json={"key": MASTER_KEY}, headers=headers)
        assert reply.status_code == 403 and "set-cookie" not in reply.headers
        assert reply.json()["error"]["code"] == "cross_site"
    same = httpx.post(
        f"{board.url}/dashboard/login", json={"key": MASTER_KEY}, headers={"origin": board.url}
    )
    assert same.status_code == 200


def test_the_api_answers_with_the_usage_apis_numbers(board: Gateway) -> None:
    now = int(time.time()) + 60
    query = f"start={now - 3600}&end={now}&group_by=model,user,feature,key,status&bucket=1m"
    expected = httpx.get(f"{board.url}/v1/usage?{query}", headers=ADMIN, timeout=30).json()
    with sign_in(board, VIEWER_KEY) as client:
        shown = client.get(f"/dashboard/api/usage?{query}").json()
    assert shown == expected
    assert expected["requests"] == 11
    assert expected["by_model"]["chat"]["requests"] == 6 and expected["by_feature"]["search"]["requests"] == 6
    # Whose fault each error was: the provider's 503, the caller's malformed request.
    assert expected["errors"] == 2
    assert expected["errors_by_fault"] == {"caller": 1, "policy": 0, "provider": 1, "gateway": 0}
    # Latency percentiles come from the rollups' histograms.
    latency = expected["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] and latency["avg"] > 0
    series = expected["series"]
    assert sum(b["requests"] for b in series) == 11 and all("latency_ms" in b for b in series)


def test_budgets_and_the_latest_requests(board: Gateway) -> None:
    with sign_in(board, MASTER_KEY) as client:
        budgets = client.get("/dashboard/api/budgets").json()["data"]
        latest = client.get("/dashboard/api/requests?order=desc&limit=3").json()
        oldest = client.get("/dashboard/api/requests?order=asc&limit=3").json()
    by_kind = {b["kind"]: b for b in budgets}
    assert by_kind["key"]["name"] == "search" and by_kind["key"]["budget"]["max_budget"] == 5
    assert by_kind["team"]["name"] == "core" and by_kind["team"]["budget"]["max_budget"] == 20
    assert by_kind["key"]["budget"]["spent"] > 0  # the virtual key's three requests
    ids = [r["id"] for r in latest["data"]]
    assert ids == sorted(ids, reverse=True) and latest["has_more"]
    assert [r["id"] for r in oldest["data"]] == sorted(r["id"] for r in oldest["data"])
    assert latest["data"][0]["status"] == 400 and latest["data"][0]["fault"] == "caller"
    assert latest["data"][1]["fault"] == "provider" and latest["data"][1]["attempts"] >= 1


def test_percentiles_from_the_histogram() -> None:
    assert latency_bucket(0.5) == 0 and latency_bucket(10) == 1 and latency_bucket(10**9) == 24
    for ms in (3, 12, 47, 180, 950, 4000, 22000):
        k = latency_bucket(ms)
        low = 0 if k == 0 else EDGES_MS[k - 1]
        assert low <= ms < (EDGES_MS[k] if k < len(EDGES_MS) else float("inf"))
    values = [20 + i for i in range(100)]  # 20..119 ms
    counts = [0] * 25
    for v in values:
        counts[latency_bucket(v)] += 1
    p50, p95 = percentile(counts, 0.5), percentile(counts, 0.95)
    assert p50 is not None and p95 is not None
    assert abs(p50 - 69.5) / 69.5 < 0.2 and abs(p95 - 114) / 114 < 0.2
    assert percentile([0] * 25, 0.5) is None


def _v1_sqlite(path: Path) -> None:
    """A ledger as schema version 1 left it, with one row and its rollup."""
    from gateway.store import sql

    db = sqlite3.connect(path)
    row_cols = sql._V1_ROW_COLUMNS
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    cols = ", ".join(f'"{c}" {sql.ROW_TYPES.get(c, "TEXT")}' for c in row_cols)
    db.execute(f"CREATE TABLE usage_rows (id INTEGER PRIMARY KEY, {cols})")
    dims = ", ".join(f'"{d}" {sql.DIMENSION_TYPES.get(d, "TEXT")} NOT NULL' for d in sql._V2_ROLLUP_DIMS)
    measures = ", ".join(f'"{m}" BIGINT NOT NULL DEFAULT 0' for m in sql._V1_MEASURES)
    key = ", ".join(f'"{d}"' for d in sql._V2_ROLLUP_DIMS)
    db.execute(f"CREATE TABLE usage_minute ({dims}, {measures}, PRIMARY KEY ({key}))")
    db.execute(
        "CREATE TABLE usage_tag_minute (minute BIGINT NOT NULL, tag TEXT NOT NULL,"
        f" {measures}, PRIMARY KEY (minute, tag))"
    )
    minute = int(time.time()) // 60 * 60
    db.execute(
        "INSERT INTO usage_minute (minute, endpoint, key_id, team, user, feature, model, provider,"
        " status, requests, input_tokens) VALUES (?, 'chat/completions', '', '', '', '', 'old',"
        " 'openai', 200, 4, 40)",
        (minute,),
    )
    db.commit()
    db.close()


def test_a_version_1_ledger_is_migrated_in_place(impl: str, mock: MockOpenAI, tmp_path: Path) -> None:
    _v1_sqlite(tmp_path / "usage.db")
    config = write_config(CONFIG.format(mock=mock.url).split("governance:")[0])
    env = {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY, "GATEWAY_DATA_DIR": str(tmp_path)}
    gw = start_gateway(impl, ["--config", str(config)], env)
    try:
        with openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0) as client:
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        usage = httpx.get(f"{gw.url}/v1/usage?time_range=last_hour&group_by=model", headers=ADMIN).json()
    finally:
        gw.stop()
    assert usage["by_model"]["old"]["requests"] == 4  # version 1's rollups are kept
    assert usage["by_model"]["old"]["latency_ms"]["p50"] is None  # no histogram before v2
    assert usage["by_model"]["chat"]["latency_ms"]["p50"] is not None
    db = sqlite3.connect(tmp_path / "usage.db")
    assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 5
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "usage_blocks" in tables and "usage_rows" not in tables  # raw rows moved into blocks
    db.close()


# -- the page, in a real browser ---------------------------------------------------------------


def _chromium() -> str:
    if not os.path.exists(CHROMIUM):
        pytest.fail("the dashboard test needs Debian's Chromium: apt-get install chromium (make test does)")
    return CHROMIUM


def test_the_page_in_a_browser(board: Gateway, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expected = httpx.get(
        f"{board.url}/v1/usage?time_range=last_24_hours&group_by=model", headers=ADMIN, timeout=30
    ).json()
    chat_only = httpx.get(
        f"{board.url}/v1/usage?time_range=last_24_hours&model=chat", headers=ADMIN, timeout=30
    ).json()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{board.url}/dashboard")
            page.fill("#login-key", "wrong")
            page.click("#login-submit")
            expect(page.locator("#login-error")).to_have_text("Incorrect key.")
            errors.clear()  # the browser logs the 401 itself
            page.fill("#login-key", MASTER_KEY)
            page.click("#login-submit")
            page.wait_for_selector("body[data-loaded]")
            # The totals shown are /v1/usage's.
            assert page.get_attribute("#kpi-requests", "data-value") == str(expected["requests"])
            assert page.inner_text("#kpi-requests") == f"{expected['requests']:,}"
            assert float(page.get_attribute("#kpi-cost", "data-value") or "nan") == pytest.approx(
                float(expected["total_cost"]), abs=1e-12
            )
            assert page.get_attribute("#kpi-tokens", "data-value") == str(expected["total_tokens"])
            assert page.get_attribute("#kpi-errors", "data-value") == str(expected["errors"])
            assert page.locator("#by-model tr[data-name='chat']").count() == 1
            # Cost by routing decision: the one-target model's decision is its target.
            assert page.locator("#by-route tr[data-name='openai/gpt-4o-mini']").count() == 1
            assert page.locator("#budgets tr[data-scope]").count() == 2
            assert page.locator("#faults-table tr[data-fault='provider'] td").nth(1).inner_text() == "1"
            assert page.locator("#chart-requests svg rect").count() > 0
            rows = page.locator("#requests-table tbody tr[data-request-id]")
            assert rows.count() == expected["requests"]
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            shot = os.environ.get("GATEWAY_DASHBOARD_SCREENSHOT")
            if shot:
                shutil.copy(tmp_path / "dashboard.png", shot)
            # A filter narrows every panel to what /v1/usage says for it.
            page.select_option("#filter-model", "chat")
            expect(page.locator("#kpi-requests")).to_have_attribute(
                "data-value", str(chat_only["requests"])
            )
            expect(rows).to_have_count(chat_only["requests"])
            assert page.locator("#by-model tr[data-name]").count() == 1
            # A request's drill-down: its ledger row.
            first = rows.first
            request_id = first.get_attribute("data-request-id")
            first.click()
            drill = page.locator("#drilldown")
            expect(drill).to_be_visible()
            expect(drill.locator("dd[data-field='request_id']")).to_have_text(request_id or "")
            expect(drill.locator("dd[data-field='attempts']")).to_have_text("1")
            # Any request, by its id: the search box opens its drill-down.
            page.click("#drilldown-close")
            oldest = httpx.get(f"{board.url}/v1/usage/requests?limit=1", headers=ADMIN).json()
            wanted = oldest["data"][0]["request_id"]
            page.fill("#search-request", wanted)
            page.press("#search-request", "Enter")
            expect(drill.locator("dd[data-field='request_id']")).to_have_text(wanted)
            assert (tmp_path / "dashboard.png").stat().st_size > 20_000
            assert not errors, errors
        finally:
            browser.close()


def test_an_empty_ledger_is_shown_as_such(impl: str, mock: MockOpenAI) -> None:
    from playwright.sync_api import sync_playwright

    text = CONFIG.format(mock=mock.url).split("governance:")[0]
    gw = start_gateway(
        impl, ["--config", str(write_config(text))],
        {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY},
    )  # fmt: skip
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(f"{gw.url}/dashboard")
                page.fill("#login-key", MASTER_KEY)
                page.click("#login-submit")
                page.wait_for_selector("body[data-loaded]")
                assert page.inner_text("#kpi-requests") == "0"
                assert "No requests in this range yet" in page.inner_text("#notice")
                assert "No data in this range" in page.inner_text("#chart-cost")
            finally:
                browser.close()
    finally:
        gw.stop()
