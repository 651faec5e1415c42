"""The portal widget and the staff page in headless Chromium, against a real pipeline.

A ``leap worker`` scores ten days of a synthetic cohort (event clock, Apache Kafka, Redis,
PostgreSQL history) and ``leap api`` serves it; one student opts out of contact through
the API. The browser then checks what people see against ``leap replay`` of the same file:
the widget's indicator, label, icon and days; the explanation opening by keyboard; a
student refused another student's record (the API answered 404); a tutor's list in the
order the rules give, with "do not contact" marks and two-band drops; and the page at
360 px. Screenshots for the README are written to docs/.
"""

from __future__ import annotations

import json
import subprocess
import time as clock
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import httpx
import pytest
import redis
from selenium.webdriver import ActionChains, Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from api.access import Principal, Role
from leap.brokers import free_port
from leap.reference import load_students
from leap.scoring import LABELS
from leap.tokens import ensure_signing_key
from schemas.codec import activity_to_json
from tests.browser.chromium import chromium, responses
from tests.integration.api_client import TEST_AUDIENCE, TEST_ISSUER, signing_key, token
from tests.integration.leap_process import leap_running, run_leap, wait_for
from tests.integration.test_pipeline import (
    ZONE,
    Pipeline,
    build_pipeline,
    import_until_closed,
    replay,
    wait_all_closed,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

START = date(2026, 11, 2)  # a Monday, in term: fixed, so the data is the same every run
DAYS = 10
LAST = START + timedelta(days=DAYS - 1)
NEXT = LAST + timedelta(days=1)  # the open day: "today so far"
GRACE = timedelta(hours=2)
KNOWN = "S1000001"  # the widget's student; tutee of TBM1000
OTHER = "S1000002"
DOCS = Path(__file__).resolve().parents[2] / "docs"
RANK = {level: rank for rank, level in enumerate(("very_low", "low", "partial", "good", "high"))}
SHAPES = {"high": "star", "good": "circle", "partial": "diamond", "low": "triangle"}
SHAPES["very_low"] = "octagon"


@dataclass
class Site:
    base: str
    pipeline: Pipeline
    expected: dict[str, dict[str, Any]]  # leap replay as of LAST
    week_before: dict[str, dict[str, Any]]  # leap replay as of LAST - 7
    opted_out: str
    tutor: str


def _psql(dsn: str, sql: str) -> None:
    subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A private PostgreSQL database for the worker's history and the API's audit log."""
    admin = "postgresql:///postgres?host=/var/run/postgresql"
    name = f"leaptest_browser_{uuid4().hex[:8]}"
    _psql(admin, f"CREATE DATABASE {name}")
    parts = urlsplit(admin)
    dsn = f"{parts.scheme}://{parts.netloc}/{name}?{parts.query}"
    try:
        yield dsn
    finally:
        _psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _today_so_far(pipeline: Pipeline) -> None:
    """A few of KNOWN's actions early on the day after LAST: the open day, "so far"."""
    with pipeline.events_file.open("a") as out:
        for minute, (source, quantity) in enumerate((("moodle", 12.0), ("library", 1.0))):
            event = {
                "event_id": f"browser:today:{minute}",
                "student_id": KNOWN,
                "source": source,
                "action": "viewed",
                "occurred_at": datetime.combine(NEXT, time(0, 30 + minute), ZONE),
                "quantity": quantity,
                "course_id": None,
                "received_at": None,
                "attributes": {},
            }
            out.write(json.dumps(activity_to_json(event)) + "\n")


def _trend(site_expected: dict[str, Any], before: dict[str, Any] | None) -> int | None:
    if before is None:
        return None
    return RANK[site_expected["indicator"]] - RANK[before["indicator"]]


def _tutor_with_a_drop(
    expected: dict[str, dict[str, Any]], week_before: dict[str, dict[str, Any]], pipeline: Pipeline
) -> str:
    """The first tutor (by id) with a tutee two or more bands lower than a week before."""
    tutors = _tutors(pipeline)
    for tutor in sorted(set(tutors.values())):
        if any(
            (t := _trend(expected[sid], week_before.get(sid))) is not None and t <= -2
            for sid, who in tutors.items()
            if who == tutor and sid in expected
        ):
            return tutor
    raise AssertionError("the synthetic term has no two-band drop: choose other dates")


def _tutors(pipeline: Pipeline) -> dict[str, str]:
    return {sid: s.tutor_id for sid, s in load_students(pipeline.students_csv).items()}


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, redis_url: str, database: str
) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("browser")
    prefix = f"leaptest:{uuid4().hex[:8]}:"
    services = {"kafka_bootstrap": kafka_bootstrap, "redis_url": redis_url, "redis_prefix": prefix}
    p = build_pipeline(tmp, services, f"t{uuid4().hex[:8]}.", "event", START, DAYS, False)
    _today_so_far(p)
    p.env["LEAP_POSTGRES_DSN"] = database
    run_leap(["db", "upgrade"], p.env, p.workdir)
    expected = replay(p, LAST)
    try:
        with leap_running(["worker", "--loglevel", "warning"], p.env, tmp / "worker.log"):
            started = clock.monotonic()
            import_until_closed(p, p.events_file, LAST)
            wait_all_closed(p, LAST, len(expected), timeout=180, log=tmp / "worker.log")
            wait_for(
                lambda: _history_rows(database) >= len(expected) * DAYS,
                timeout=60,
                what="a history row per student and day",
                log=tmp / "worker.log",
            )
            print(f"worker: every indicator in {clock.monotonic() - started:.1f} s")
        port = free_port()
        api_env = {
            **p.env,
            "LEAP_API_PORT": str(port),
            "LEAP_AUTH_ISSUER": TEST_ISSUER,
            "LEAP_AUTH_AUDIENCE": TEST_AUDIENCE,
            "LEAP_AUTH_PUBLIC_KEY_FILE": str(ensure_signing_key(signing_key())),
        }
        base = f"http://127.0.0.1:{port}"
        with leap_running(["api"], api_env, tmp / "api.log"):
            wait_for(
                lambda: _status(f"{base}/readyz") == 200,
                timeout=60,
                what="the API ready",
                log=tmp / "api.log",
            )
            week_before = replay(p, LAST - timedelta(days=7))
            tutor = _tutor_with_a_drop(expected, week_before, p)
            tutees = sorted(sid for sid, t in _tutors(p).items() if t == tutor)
            opted_out = tutees[1]
            _opt_out(base, opted_out)
            yield Site(base, p, expected, week_before, opted_out, tutor)
    finally:
        store = redis.Redis.from_url(redis_url)
        keys = list(store.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            store.delete(*keys)
        store.close()


def _history_rows(dsn: str) -> int:
    done = subprocess.run(
        ["psql", dsn, "-tAc", "SELECT count(*) FROM leap.indicator_history"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _opt_out(base: str, sid: str) -> None:
    """The student opts out through the API, as the portal would; the API follows the topic."""
    headers = {"Authorization": f"Bearer {token(Principal(Role.STUDENT, sid))}"}
    path = f"{base}/v1/students/{sid}/contact-preference"
    put = httpx.put(path, json={"contact_allowed": False}, headers=headers, timeout=10)
    assert put.status_code == 200, put.text
    wait_for(
        lambda: httpx.get(path, headers=headers).json()["contact_allowed"] is False,
        timeout=30,
        what="the opt-out followed by the API",
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Chrome]:
    with chromium() as driver:
        yield driver


def open_page(driver: Chrome, site: Site, principal: Principal, **view: str) -> None:
    """The staff page as the portal opens it: the token in the fragment, never the URL."""
    driver.get("about:blank")
    fragment = "&".join([f"token={token(principal)}", *(f"{k}={v}" for k, v in view.items())])
    responses(driver)  # forget earlier pages' responses
    driver.get(f"{site.base}/staff#{fragment}")


def widget(driver: Chrome) -> WebElement:
    """The widget once it has shown something other than "loading"."""
    element = WebDriverWait(driver, 15).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "leap-engagement[state]:not([state=loading])")
    )
    return element


def one_place(number: float) -> float:
    """As the widget shows it (JavaScript's toFixed(1): half up, on the binary value)."""
    return float(Decimal(number).quantize(Decimal("0.1"), ROUND_HALF_UP))


def shadow(element: WebElement, css: str) -> WebElement:
    return element.shadow_root.find_element(By.CSS_SELECTOR, css)


def api_json(site: Site, principal: Principal, path: str) -> Any:
    headers = {"Authorization": f"Bearer {token(principal)}"}
    response = httpx.get(f"{site.base}{path}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


#: Every text node's contrast with the background it is drawn on (WCAG 2.2 AA: 4.5:1).
CONTRAST_JS = """
const root = arguments[0];
function rgb(text) { return text.match(/[\\d.]+/g).map(Number); }
function lum([r, g, b]) {
  const c = [r, g, b].map(v => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function background(el) {
  for (let node = el; node; node = node.parentElement || (node.getRootNode().host)) {
    const value = rgb(getComputedStyle(node).backgroundColor);
    if (value.length < 4 || value[3] > 0) return value;
  }
  return [255, 255, 255];
}
const low = [];
const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const el = walker.currentNode.parentElement;
  if (!walker.currentNode.textContent.trim() || el.closest('svg') || !el.offsetParent) continue;
  const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) low.push([walker.currentNode.textContent.trim().slice(0, 40), ratio]);
}
return low;
"""


def test_widget_shows_the_students_indicator(browser: Chrome, site: Site) -> None:
    want = site.expected[KNOWN]
    record = api_json(site, Principal(Role.STUDENT, KNOWN), f"/v1/students/{KNOWN}/engagement")
    assert (record["indicator"], record["score"]) == (want["indicator"], want["score"])
    assert record["today_so_far"] is not None  # the open day after LAST

    open_page(browser, site, Principal(Role.STUDENT, KNOWN))  # a student: their own record
    element = widget(browser)
    assert element.get_attribute("state") == "ready"
    level = shadow(element, ".level")
    assert level.get_attribute("data-level") == want["indicator"]
    assert level.text == LABELS[want["indicator"]]
    icon = shadow(element, ".level svg")
    assert icon.get_attribute("data-shape") == SHAPES[want["indicator"]]
    assert icon.get_attribute("aria-hidden") == "true"  # the label says it in words
    assert shadow(element, ".score").text == f"{one_place(want['score']):g} points a day"
    reference = f"{one_place(want['reference_score']):g} points a day"
    assert shadow(element, ".reference").text == reference
    today = record["today_so_far"]
    assert f"{one_place(today['engagement']):g} points" in shadow(element, ".today").text
    assert "newest figures" in shadow(element, ".stale").text  # as_of is in the past

    # The chart's accessible table: one row per day of the window, the API's points.
    shadow(element, "button[aria-controls=numbers]").click()
    rows = element.shadow_root.find_elements(By.CSS_SELECTOR, "#numbers tbody tr")
    assert [r.get_attribute("data-date") for r in rows] == [d["date"] for d in record["days"]]
    shown = [float(r.find_element(By.CSS_SELECTOR, ".points").text) for r in rows]
    assert shown == [one_place(d["engagement"]) for d in record["days"]]
    # Every active day's bar is split by activity, which the widget only does when its
    # weights and caps give the API's points: they are the policy's.
    bars = element.shadow_root.find_elements(By.CSS_SELECTOR, "svg.chart rect[data-source]")
    assert {b.get_attribute("data-date") for b in bars} == {
        d["date"] for d in record["days"] if d["engagement"] > 0
    }
    assert browser.execute_script(CONTRAST_JS, element.shadow_root) == []
    console = " ".join(entry["message"] for entry in browser.get_log("browser"))
    assert "Content Security Policy" not in console  # the page's CSP allows all it uses
    shadow(element, "button[aria-controls=numbers]").click()  # closed again for the picture

    browser.set_window_size(360, 1400)
    try:
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 360
        element.screenshot(str(DOCS / "widget.png"))
    finally:
        browser.set_window_size(1100, 900)


def test_explanation_opens_by_keyboard(browser: Chrome, site: Site) -> None:
    open_page(browser, site, Principal(Role.STUDENT, KNOWN))
    element = widget(browser)
    panel = shadow(element, "#how")
    assert not panel.is_displayed()
    focused = ""
    for _ in range(30):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.execute_script(
            "const a = document.activeElement;"
            "return a.shadowRoot && a.shadowRoot.activeElement"
            " ? a.shadowRoot.activeElement.textContent : ''"
        )
        if focused == "How is this worked out?":
            break
    assert focused == "How is this worked out?"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    assert panel.is_displayed()
    assert shadow(element, "button[aria-controls=how]").get_attribute("aria-expanded") == "true"
    assert "1.5 times" in panel.text and "10 points a class, up to 4 classes a day" in panel.text


def test_student_cannot_open_another_students_record(browser: Chrome, site: Site) -> None:
    assert OTHER in site.expected  # the record exists: only the token stands in the way
    open_page(browser, site, Principal(Role.STUDENT, KNOWN), student=OTHER)
    element = widget(browser)
    assert element.get_attribute("state") == "not-available"
    assert "Not available" in element.shadow_root.find_element(By.CSS_SELECTOR, "p").text
    assert element.shadow_root.find_elements(By.CSS_SELECTOR, ".level") == []
    answered = [r for r in responses(browser) if "/v1/" in r["url"]]  # the data calls
    assert answered == [{"url": f"{site.base}/v1/students/{OTHER}/engagement", "status": 404}]


def expected_tutees(site: Site) -> list[tuple[str, str, int | None]]:
    """The spec's order, worked out from replay: Very Low first, then the steepest fall,
    unknown trends after known ones, then by id."""
    rows = []
    for sid, tutor in _tutors(site.pipeline).items():
        if tutor == site.tutor and sid in site.expected:
            trend = _trend(site.expected[sid], site.week_before.get(sid))
            rows.append((sid, site.expected[sid]["indicator"], trend))
    return sorted(rows, key=lambda r: (RANK[r[1]], r[2] is None, r[2] or 0, r[0]))


def test_tutor_page_lists_tutees_most_in_need_first(browser: Chrome, site: Site) -> None:
    want = expected_tutees(site)
    open_page(browser, site, Principal(Role.TUTOR, site.tutor))
    table = WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "tutees"))
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.get_attribute("data-student") for r in rows] == [sid for sid, _, _ in want]
    assert [r.get_attribute("data-level") for r in rows] == [level for _, level, _ in want]
    for row, (sid, level, trend) in zip(rows, want, strict=True):
        cells = row.find_elements(By.CSS_SELECTOR, "td")
        assert cells[0].text.strip() == LABELS[level], sid
        assert ("Do not contact" in cells[3].text) == (sid == site.opted_out), sid
        dropped = trend is not None and trend <= -2
        assert ("dropped" in (row.get_attribute("class") or "")) == dropped, sid
        if dropped:
            assert f"Dropped {-trend} bands this week" in cells[2].text
    assert any(t is not None and t <= -2 for _, _, t in want)
    assert "Do not contact" in table.text

    # The indicator filter shows just that level's rows.
    level = want[0][1]
    browser.find_element(By.CSS_SELECTOR, f"#level-filter option[value={level}]").click()
    visible = [r.get_attribute("data-student") for r in rows if r.is_displayed()]
    assert visible == [sid for sid, lv, _ in want if lv == level]
    browser.find_element(By.CSS_SELECTOR, "#level-filter option[value='']").click()

    # The cohort filter shows just that cohort's tutees (course and year from the API).
    cohort_of = {r.get_attribute("data-student"): r.get_attribute("data-cohort") for r in rows}
    first = cohort_of[want[0][0]]
    Select(browser.find_element(By.ID, "cohort-filter")).select_by_value(first)
    visible = [r.get_attribute("data-student") for r in rows if r.is_displayed()]
    assert visible == [sid for sid, _, _ in want if cohort_of[sid] == first]
    Select(browser.find_element(By.ID, "cohort-filter")).select_by_value("")
    browser.set_window_size(1100, 1500)
    try:
        browser.save_screenshot(str(DOCS / "staff-page.png"))
    finally:
        browser.set_window_size(1100, 900)

    # The drill-down is the student's own widget, with the same record.
    table.find_element(By.LINK_TEXT, want[0][0]).click()
    element = widget(browser)
    assert shadow(element, ".level").get_attribute("data-level") == want[0][1]


def test_tutor_page_at_phone_width(browser: Chrome, site: Site) -> None:
    browser.set_window_size(360, 900)
    try:
        open_page(browser, site, Principal(Role.TUTOR, site.tutor))
        WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "tutees"))
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 360
        assert browser.execute_script(CONTRAST_JS, browser.find_element(By.TAG_NAME, "main")) == []
    finally:
        browser.set_window_size(1100, 900)


def test_department_sees_the_cohort_distribution(browser: Chrome, site: Site) -> None:
    known = site.expected[KNOWN]
    course, year = known["course"], known["year"]
    hod = Principal(Role.DEPARTMENT, "hod", _department(site, KNOWN))
    open_page(browser, site, hod)
    assert browser.switch_to.active_element.get_attribute("id") == "course-input"
    browser.find_element(By.ID, "course-input").send_keys(course)
    browser.find_element(By.ID, "year-input").send_keys(str(year), Keys.ENTER)
    table = WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "distribution"))
    counts = {
        r.get_attribute("data-level"): int(r.find_elements(By.CSS_SELECTOR, "td")[0].text)
        for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    cohort = [r for r in site.expected.values() if (r["course"], r["year"]) == (course, year)]
    assert counts == {level: sum(r["indicator"] == level for r in cohort) for level in RANK}
    browser.save_screenshot(str(DOCS / "staff-cohort.png"))


def _department(site: Site, sid: str) -> str:
    return load_students(site.pipeline.students_csv)[sid].department


def test_pages_send_security_headers(site: Site) -> None:
    page = httpx.get(f"{site.base}/staff")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    for path in ("/staff", "/static/leap-engagement.js", "/static/staff.js", "/static/staff.css"):
        response = httpx.get(f"{site.base}{path}")
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    size = len(httpx.get(f"{site.base}/static/leap-engagement.js").content)
    print(f"leap-engagement.js: {size} bytes")


def test_widget_explains_an_unreachable_api(browser: Chrome, site: Site) -> None:
    open_page(browser, site, Principal(Role.STUDENT, KNOWN))
    element = widget(browser)
    browser.execute_script(
        "arguments[0].setAttribute('api', arguments[1])", element, f"http://127.0.0.1:{free_port()}"
    )
    WebDriverWait(browser, 15).until(lambda d: element.get_attribute("state") == "unavailable")
    assert (
        "cannot be reached just now" in element.shadow_root.find_element(By.CSS_SELECTOR, "p").text
    )
    retry = shadow(element, "button")
    assert retry.text == "Try again"
    browser.execute_script("arguments[0].removeAttribute('api')", element)  # back to this origin
    WebDriverWait(browser, 15).until(lambda d: element.get_attribute("state") == "ready")
