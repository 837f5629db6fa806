"""The lesson pages (/lab, /lab/{slug}): every page through the TestClient, and n-plus-one in a real browser.

The browser is headless Chromium (Debian's `chromium`), driven over the DevTools protocol through a
websocket: it loads the page served by uvicorn on 127.0.0.1, types the size, clicks compare, and the
test reads the statement counts the page shows. Without Chromium the browser tests skip, except in CI
(the environment variable CI set), where they fail: .ci/run installs it.
"""

import base64
import html
import inspect
import itertools
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from heroes.lab.pages import PRIVATE
from heroes.lessons import BY_SLUG, LESSONS, TRACKS

SLUGS = [lesson.slug for lesson in LESSONS]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name in lab.js, never fetched
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1024,768",
    # nothing but loopback, even if a page asked: other hosts go to a proxy that is not there (port 9 is
    # closed), names do not resolve; the test still sees the attempt (Network.requestWillBeSent)
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
VIEWPORT = (1024, 768)  # a projector
WAIT = 60  # seconds: the longest the browser tests wait for anything


def text_of(page: str) -> str:
    """What the page says, tags stripped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def external_references(text: str) -> list[str]:
    return [url for url in re.findall(r"https?://[^\s\"'<>)]+", text) if url != SVG_NAMESPACE]


# ---- the pages, through the TestClient ----------------------------------------------------------------


def test_index_lists_every_lesson_by_track(client) -> None:
    response = client.get("/lab")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    text = text_of(page)
    links = re.findall(r'href="(/lab/[a-z0-9-]+)"', page)
    assert links == [f"/lab/{slug}" for slug in SLUGS]  # curriculum order
    for track, lessons in TRACKS.items():
        assert f"<h2>{track}</h2>" in page
        for lesson in lessons:
            assert lesson.title in text
            assert " ".join(lesson.text["Symptom"].replace("`", "").split()[:8]) in text  # `x`: <code>
    assert client.get("/").json()["lab"] == "/lab"


@pytest.mark.parametrize("slug", SLUGS)
def test_lesson_page_shows_its_text_and_the_code_that_runs(client, engine_name: str, slug: str) -> None:
    lesson = BY_SLUG[slug]
    response = client.get(f"/lab/{slug}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    text = text_of(page)
    assert lesson.title in text
    order = ["Symptom", "Cause", "Fix"] + ["Myth"] * bool(lesson.myth)
    order += [name for name in lesson.text if name not in order]  # Data, Evidence, Commands...
    text_section = page.split('<section class="text">')[1].split("</section>")[0]
    assert re.findall(r"<h2>(\w+)</h2>", text_section) == order
    for name in ("Symptom", "Cause", "Fix"):
        assert (
            " ".join(lesson.text[name].replace("secret_name", "<private>").replace("`", "").split()[:10])
            in text
        )
    routes = {route.variant: route for route in lesson.routes}
    for variant in ("bad", "fixed"):
        for line in inspect.getsource(routes[variant].endpoint).splitlines():
            assert line.strip().replace(*PRIVATE) in text  # every line, as the module has it (but the name)
    figures = re.findall(r'<figure class="source [^"]*" data-variant="([^"]+)"', page)
    assert figures == ["bad", "fixed"] + [v for v in routes if v not in ("bad", "fixed")]
    assert f'data-url="/lessons/{slug}/compare"' in page
    assert "secret" not in page.lower()
    assert external_references(page) == []
    links = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert [link for link in links if not link.startswith("/")] == ["data:,"]  # the empty favicon: no request
    notice = 'id="needs-postgresql"' in page
    assert notice == (engine_name not in lesson.engines)
    if notice:
        assert "make run-postgres" in text


def test_the_bad_and_fixed_lines_that_differ_are_marked(client) -> None:
    page = client.get("/lab/n-plus-one").text
    marked = [text_of(line) for line in re.findall(r'<span class="hll">(.*?)\n', page)]
    lazy, eager = (
        next(line for line in marked if key in line) for key in ("one SELECT per team", "selectinload")
    )
    assert "team.heroes: one SELECT per team" in lazy  # bad's comment carries the pitfall
    assert "options(selectinload(Team.heroes))" in eager
    assert not any('"""' in line for line in marked)  # docstrings differ always: never marked


@pytest.mark.sqlite_only(reason="the page's text does not depend on the engine")
def test_a_myth_follows_the_fix(client, monkeypatch: pytest.MonkeyPatch) -> None:
    lesson = BY_SLUG["n-plus-one"]
    monkeypatch.setitem(lesson.text, "Myth", "`lazy='joined'` on the model fixes it.")  # last in the dict
    page = client.get("/lab/n-plus-one").text
    text_section = page.split('<section class="text">')[1].split("</section>")[0]
    assert re.findall(r"<h2>(\w+)</h2>", text_section) == ["Symptom", "Cause", "Fix", "Myth", "Data"]
    assert '<div class="section myth"><h2>Myth</h2><p><code>lazy=&#39;joined&#39;</code> on the model' in page


def test_lesson_page_states_the_size_knob(client) -> None:
    page = client.get("/lab/n-plus-one").text
    assert re.search(r'<input id="size" name="size" type="number"[^>]*min="1" max="5000"', page)
    assert [int(n) for n in re.findall(r'class="demo-size" data-size="(\d+)"', page)] == [10, 100, 1000]
    assert "teams (3 heroes each) in the lesson&#39;s scratch database, 1 to 5,000" in page
    assert 'id="size"' not in client.get("/lab/detached-instance").text  # no size, no knob


@pytest.mark.sqlite_only(reason="a 404 page does not touch the database")
def test_unknown_lesson_is_a_404_page_listing_the_lessons(client) -> None:
    response = client.get("/lab/n-plus-two")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "No lesson “n-plus-two”" in text_of(response.text)
    assert re.findall(r'href="(/lab/[a-z0-9-]+)"', response.text) == [f"/lab/{slug}" for slug in SLUGS]
    assert "<script" not in client.get("/lab/%3Cscript%3E").text  # the slug is escaped


@pytest.mark.sqlite_only(reason="static files do not touch the database")
def test_static_files_are_served_from_the_package_and_load_nothing_from_elsewhere(client) -> None:
    for name, kind in (("lab.css", "text/css"), ("lab.js", "text/javascript")):
        response = client.get(f"/lab/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        assert external_references(response.text) == []
        assert "@import" not in response.text and "url(" not in response.text


# ---- the pages in a real browser ----------------------------------------------------------------------


class DevTools:
    """One page of the browser, over the DevTools protocol: commands, their answers, and its events."""

    def __init__(self, url: str) -> None:
        # no Origin header: Chromium refuses websocket clients from origins it was not told to allow
        self.ws = websocket.create_connection(url, timeout=WAIT, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        sent = next(self.ids)
        self.ws.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for_event(self, method: str) -> dict:
        deadline = time.monotonic() + WAIT
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} in {WAIT} s")
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str):
        """Poll `expression` until it is truthy, at most WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} still false after {WAIT} s")
            time.sleep(0.1)
        return value

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired")

    def click(self, selector: str) -> None:
        """A real click: the mouse pressed and released at the element's centre, as a person would."""
        x, y = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_into(self, selector: str, text: str) -> None:
        self.evaluate(
            f"document.querySelector({json.dumps(selector)}).select()"
        )  # focus, select what is there
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path, *, full_page: bool = False) -> bytes:
        png = base64.b64decode(
            self.send("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)["data"]
        )
        path.write_bytes(png)
        return png

    def close(self) -> None:
        self.ws.close()


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])  # the IHDR chunk: width, height


def devtools_port(profile: Path, process: subprocess.Popen) -> int:
    """Chromium writes the port it chose (--remote-debugging-port=0) to DevToolsActivePort."""
    deadline = time.monotonic() + WAIT
    active = profile / "DevToolsActivePort"
    while not (active.exists() and active.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            log = (profile / "chromium.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Chromium did not start (exit {process.poll()}): {log}")
        time.sleep(0.05)
    return int(active.read_text().split()[0])


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Headless Chromium for the whole run, its DevTools port; killed at the end, whatever happened."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; CI must run the browser tests (.ci/run installs it)")
        pytest.skip("Chromium is not installed (apt-get install chromium): the browser tests cannot run")
    profile = tmp_path_factory.mktemp("chromium")
    with (profile / "chromium.log").open("wb") as log:
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: its helpers go with it
        )
    try:
        yield devtools_port(profile, process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def browser(chromium: int) -> Iterator[DevTools]:
    """A new tab at 1024x768, recording every request it makes and every error it throws."""
    devtools_http = f"http://127.0.0.1:{chromium}"
    request = urllib.request.Request(f"{devtools_http}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=WAIT) as answer:
        target = json.load(answer)
    page = DevTools(target["webSocketDebuggerUrl"])
    try:
        for domain in ("Page", "Runtime", "Network", "Log"):
            page.send(f"{domain}.enable")
        width, height = VIEWPORT
        page.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield page
    finally:
        page.close()
        with urllib.request.urlopen(f"{devtools_http}/json/close/{target['id']}", timeout=WAIT):
            pass


def requested(page: DevTools) -> list[str]:
    return [
        e["params"]["request"]["url"] for e in page.events if e.get("method") == "Network.requestWillBeSent"
    ]


def errors(page: DevTools) -> list[str]:
    thrown = [e["params"] for e in page.events if e.get("method") == "Runtime.exceptionThrown"]
    logged = [
        e["params"]["entry"]
        for e in page.events
        if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
    ]
    return [json.dumps(item)[:300] for item in thrown + logged]


ROWS = """Array.from(document.querySelectorAll('#results tr[data-variant]'), tr => [tr.dataset.variant,
  tr.querySelector('td.statements .count').textContent, tr.querySelector('td.outcome').textContent])"""
GROUPS = """Array.from(document.querySelectorAll('#results tr[data-variant="bad"] td.statements li'),
  li => [li.querySelector('code').textContent, li.querySelector('.times').textContent,
         li.querySelector('details > code')?.textContent])"""
NOT_RUN = """Array.from(document.querySelectorAll('#chart svg text'))
  .filter(t => t.textContent === 'not run yet').length"""
BARS = """Array.from(document.querySelectorAll('#chart svg[data-metric="statements"] text[data-size="10"]'),
  t => [t.dataset.variant, t.textContent])"""


def test_compare_in_the_browser_shows_the_counts(
    live_server: str, seeded, browser: DevTools, tmp_path: Path
) -> None:
    browser.open(f"{live_server}/lab/n-plus-one")
    assert browser.evaluate("document.querySelector('h1').textContent") == BY_SLUG["n-plus-one"].title
    browser.type_into("#size", "10")
    browser.click("#run")
    browser.wait_until("!!document.querySelector('#results tr[data-variant], .status.error')")
    assert browser.evaluate("document.getElementById('status').className") == "status"
    assert browser.evaluate(ROWS) == [
        ["bad", "11", "200 OK"],
        ["fixed", "2", "200 OK"],
        ["fixed/joinedload", "1", "200 OK"],
    ]
    assert browser.evaluate("document.querySelector('#results caption').textContent").startswith(
        "n-plus-one at 10 teams, on "
    )
    groups = browser.evaluate(GROUPS)  # the lazy load, 10 times, then the teams
    assert [times for _, times, _ in groups] == ["× 10", "× 1"]
    assert groups[0][0] == "SELECT … FROM hero WHERE ? = hero.team_id ORDER BY hero.id"  # the columns folded
    assert groups[0][2].startswith("SELECT hero.name, hero.age, hero.team_id, hero.id, hero.<private>, ")
    assert groups[1][0] == "SELECT … FROM team ORDER BY team.id"
    assert groups[1][2] == "SELECT team.name, team.headquarters, team.id FROM team ORDER BY team.id"
    assert browser.evaluate("document.getElementById('chart').hidden") is False
    assert browser.evaluate(BARS) == [["bad", "11"], ["fixed", "2"], ["fixed/joinedload", "1"]]
    assert browser.evaluate(NOT_RUN) == 4  # 100 and 1,000 teams, in the statements and the wall ms charts
    shown = browser.evaluate("document.documentElement.outerHTML")
    assert "secret" not in shown.lower()
    assert all(url.startswith(live_server) for url in requested(browser)), requested(browser)
    assert errors(browser) == []
    browser.evaluate("document.getElementById('compare').scrollIntoView()")
    assert png_size(browser.screenshot(tmp_path / "n-plus-one.png")) == VIEWPORT
    assert len(browser.screenshot(tmp_path / "n-plus-one-page.png", full_page=True)) > 10_000


@pytest.mark.sqlite_only(
    reason="on SQLite the PostgreSQL-only lesson's compare answers 409: the page shows it"
)
def test_a_postgresql_lesson_on_sqlite_says_how_to_start_it(live_server: str, browser: DevTools) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{live_server}/lessons/concurrent-index/compare", timeout=WAIT)
    assert refused.value.code == 409
    detail = json.load(refused.value)["detail"]
    browser.open(f"{live_server}/lab/concurrent-index")
    notice = browser.evaluate("document.getElementById('needs-postgresql').textContent")
    assert "make run-postgres" in notice
    browser.click("#run")
    assert browser.wait_until("document.querySelector('.status.error')?.textContent") == detail
    assert browser.evaluate("document.querySelectorAll('#results tr').length") == 0
    assert [e for e in errors(browser) if "status of 409" not in e] == []  # the console notes the 409 only
