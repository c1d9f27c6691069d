"""The operator console in a real browser: headless Chromium (Debian's) driven by Selenium.

Against the real API under gunicorn on the test database, a real satellite on the real Docker
engine (a signed compute for Genisys too). Screenshots of each page go to
$BOATLOAD_SCREENSHOTS (default var/screenshots), for a reviewer to look at.
"""
import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chromium.remote_connection import ChromiumRemoteConnection
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import IMAGE_NAME, IMAGE_TAG, ROOT, RUN_ID, RUN_LABEL, SatelliteProcess, free_port, jwt_for
from tests.console.quiet_network import QuietNetwork
from tests.live import live_world

SCREENSHOTS = Path(os.environ.get("BOATLOAD_SCREENSHOTS", ROOT / "var" / "screenshots"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORDS = {"ops": "ops-pass-1", "alice": "alice-pass-1", "bob": "bob-pass-1"}
# Container and service names are the engine's, shared by every test run on this machine: made unique per run.
KEPT, MADE, MANY = f"alice-kept-{RUN_ID}", f"console-made-{RUN_ID}", f"many{RUN_ID}"
WEB, LIVE = f"web{RUN_ID}", f"live{RUN_ID}"
KEYS, BROKEN, FAILS = f"keys-{RUN_ID}", f"broken-{RUN_ID}", f"fails-{RUN_ID}"
# A changed file whose name needs escaping in a URL (a space, a '#'): its link must still fetch it.
ODD_FILE = "/out/odd name #1.txt"
SCRIPT = ("echo hello-from-console; mkdir -p /out; echo payload-123 > /out/result.txt; "
          f"echo odd-bytes > '{ODD_FILE}'; i=0; "
          "while [ $i -lt 300 ]; do echo tick $i; i=$((i+1)); sleep 1; done")


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Committed rows the API process sees: staff `ops`, users `alice` and `bob`, a real host and compute,
    a container of alice's, and a service of hers."""
    from django.contrib.auth import get_user_model

    from boatload import services
    from genisys.models import Compute, Service

    folder = tmp_path_factory.mktemp("console")
    static = folder / "static"
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True,
                   env={**os.environ, "BOATLOAD_STATIC_ROOT": str(static)})

    def rows(host, satellite):
        model = get_user_model()
        users = {"ops": model.objects.create_user("ops", password=PASSWORDS["ops"], is_staff=True),
                 "alice": model.objects.create_user("alice", password=PASSWORDS["alice"]),
                 "bob": model.objects.create_user("bob", password=PASSWORDS["bob"])}
        Compute.objects.create(name="local", connector=satellite.url)
        Service.objects.create(name=WEB, image=f"{IMAGE_NAME}:{IMAGE_TAG}", command="sleep 3600",
                               owner=users["alice"])
        _, [(kept, error)] = services.container_create_request(
            user=users["alice"], fields={"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG,
                                         "name": KEPT, "command": ["sleep", "3600"]})
        assert error is None
        return {"users": users, "kept": kept}

    with live_world(django_db_blocker, folder, host_name="console-host", rows=rows,
                    # A frozen host's creates must still be waited for while a test looks at the others'.
                    api_env={"BOATLOAD_STATIC_ROOT": str(static), "BOATLOAD_SATELLITE_TIMEOUT": "30s"},
                    host_fields={"labels": {"group": "g1"}, "cpus": 2}) as made:
        yield made


class Browser:
    """One headless Chromium with its own profile; `shot(name)` writes a screenshot."""

    def __init__(self, base, network, width=1280, height=800, page_load="normal"):
        self.base = base
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # "none": a command returns while the page is still loading (a page that streams, read as it arrives).
        options.page_load_strategy = page_load
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--window-size={width},{height}"):
            options.add_argument(flag)
        # chromedriver (and the Chromium it starts, with a profile of its own) live in `network`'s namespace.
        # A Chromium connection, for DevTools commands (the viewport's size, below).
        self.driver = webdriver.Remote(options=options, command_executor=ChromiumRemoteConnection(
            network.driver_url, vendor_prefix="goog", browser_name="chrome"))
        self.driver.set_page_load_timeout(60)
        self.viewport(width, height)
        # A condition read while a click's navigation replaces the page may find an element of the old one
        # (stale) or none yet: both mean "not yet".
        self.wait = WebDriverWait(self.driver, 30, poll_frequency=0.2,
                                  ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def get(self, path):
        """Open a page; a Chromium error page (net::ERR_…) fails the test at once."""
        self.driver.get(self.base + path)
        if self.driver.execute_script("return !!document.getElementById('main-frame-error')"):
            raise AssertionError(f"{path}: Chromium could not load the page: {self.find('body').text[:300]}")

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def viewport(self, width, height):
        """Lay pages out at exactly width×height CSS pixels. (A headless window is never narrower than
        about 500 px, whatever size it is given: a 390 px window would lay pages out at 485 px.)"""
        self.driver.execute("executeCdpCommand", {"cmd": "Emulation.setDeviceMetricsOverride", "params": {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}})
        self.size = (width, height)

    def shot(self, name, width=None):
        """A screenshot of the whole page (at `width` when given), then the viewport as it was."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        size = self.size
        self.viewport(width or size[0], size[1])
        height = self.driver.execute_script("return Math.max(document.documentElement.scrollHeight, "
                                            "document.body.scrollHeight)")
        self.viewport(width or size[0], min(max(height, 600), 4000))
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        self.viewport(*size)

    def login(self, user):
        self.get("/")
        self.wait.until(lambda d: "/console/login/" in d.current_url and d.find_elements(By.ID, "id_password"))
        self.find("#id_username").send_keys(user)
        self.find("#id_password").send_keys(PASSWORDS[user], Keys.ENTER)
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "form.who"))

    def session(self):
        """requests with this browser's session cookie: fetches exactly what a link in the page gives."""
        session = requests.Session()
        for cookie in self.driver.get_cookies():
            session.cookies.set(cookie["name"], cookie["value"])
        return session

    def close(self):
        self.driver.quit()


@pytest.fixture(scope="module")
def network(world, tmp_path_factory):
    """chromedriver and Chromium where the engine's veths can not reach them (see quiet_network.py)."""
    quiet = QuietNetwork(CHROMEDRIVER, tmp_path_factory.mktemp("chromedriver") / "chromedriver.log")
    quiet.expose(world["server"].port)
    yield quiet
    quiet.close()


@pytest.fixture
def browser(world, network):
    opened = []

    def open_browser(**options):
        opened.append(Browser(world["server"].url, network, **options))
        return opened[-1]

    yield open_browser
    for b in opened:
        b.close()


@pytest.fixture
def host_active(world, django_db_blocker):
    """The real host active again, committed (the staff test drained it through the API). For tests outside a
    test transaction (pytest-django runs them after those in one), so the API process sees it."""
    from boatload.models import Host

    with django_db_blocker.unblock():
        Host.objects.filter(pk=world["host"].pk).update(state=Host.State.ACTIVE)
    return world["host"]


def canvas_has_colour(browser, container_css, rgb):
    """True when a canvas under `container_css` holds pixels of the series colour `rgb` (a drawn line)."""
    return browser.driver.execute_script("""
        const [r, g, b] = arguments[1];
        for (const canvas of document.querySelectorAll(arguments[0] + ' canvas')) {
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          let hits = 0;
          for (let i = 0; i < data.length; i += 4)
            if (Math.abs(data[i] - r) < 30 && Math.abs(data[i+1] - g) < 30 &&
                Math.abs(data[i+2] - b) < 30 && data[i+3] > 100) hits++;
          if (hits > 20) return true;
        }
        return false;""", container_css, rgb)


def assert_every_control_labelled(browser):
    """Each input, select, textarea and button of the page has an accessible name (as Chromium computes it)."""
    controls = browser.all("input:not([type=hidden]), select, textarea, button")
    assert controls
    unnamed = [c.get_attribute("outerHTML")[:120] for c in controls if not (c.accessible_name or "").strip()]
    assert unnamed == [], f"{browser.driver.current_url}: controls without a name: {unnamed}"


def chart_state(browser):
    """What the CPU/memory chart holds, read from its uPlot instance: x range, samples, memory values."""
    return browser.driver.execute_script("""
        const u = window.boatloadCharts && window.boatloadCharts.cpuMem;
        if (!u) return {points: 0};
        return {points: u.data[0].length, xs: u.data[0], memory: u.data[2],
                min: u.scales.x.min, max: u.scales.x.max, now: Date.now() / 1000};""")


def assert_chart_spans_now(state, points=1):
    """The x range covers every sample and lies within the last ten minutes, ending near now."""
    xs = state["xs"]
    assert len(xs) >= points and sum(v is not None for v in state["memory"]) >= points, state
    assert state["min"] <= min(xs) and max(xs) <= state["max"], state
    assert state["max"] - state["min"] <= 600, f"x axis spans {state['max'] - state['min']:.0f} s"
    assert abs(state["now"] - state["max"]) <= 60, state


def press(browser, *keys):
    """Keys typed into whatever has the focus, as a user at the keyboard does (no element is picked)."""
    ActionChains(browser.driver).send_keys(*keys).perform()


def focused_matches(browser, css):
    return browser.driver.execute_script(
        "return !!document.activeElement && document.activeElement.matches(arguments[0])", css)


def tab_to(browser, css, back=False, limit=80):
    """Press Tab (Shift+Tab with `back`) until the focus is on an element matching `css`."""
    for _ in range(limit):
        if focused_matches(browser, css):
            return
        press(browser, *((Keys.SHIFT, Keys.TAB) if back else (Keys.TAB,)))
    raise AssertionError(f"{browser.driver.current_url}: Tab never reached {css}")


def assert_no_horizontal_scroll(browser):
    """The document is no wider than the viewport: nothing makes the whole page scroll sideways."""
    document_width, viewport = browser.driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    wide = browser.driver.execute_script("""
        const limit = document.documentElement.clientWidth;
        return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > limit + 1
            && !e.closest('.scroll, pre')).slice(0, 5).map(e => e.outerHTML.slice(0, 100));""")
    assert document_width <= viewport, f"{browser.driver.current_url}: {document_width} > {viewport} px: {wide}"


def staff_routes(host_name):
    """Every staff-only console route (its view is marked by views.staff), with each action it takes."""
    from django.urls import reverse

    from console import urls

    paths = []
    for pattern in urls.urlpatterns:
        if not getattr(pattern.callback, "staff_only", False):
            continue
        for action in getattr(pattern.callback, "actions", [None]):
            values = {"name": host_name, "action": action}
            paths.append(reverse(f"console:{pattern.name}",
                                 kwargs={key: values[key] for key in pattern.pattern.converters}))
    return paths


def assert_no_staff_control(browser):
    """No element marked staff, no form that posts to a staff route and no link to the admin."""
    from django.urls import Resolver404, resolve

    assert browser.all("[data-staff]") == [], browser.driver.current_url
    assert not browser.all("a[href^='/admin']"), browser.driver.current_url
    for form in browser.all("form"):
        path = urlsplit(form.get_attribute("action")).path
        try:
            view = resolve(path).func
        except Resolver404:
            continue
        assert not getattr(view, "staff_only", False), f"{browser.driver.current_url}: a form posts to {path}"


@pytest.mark.django_db
def test_create_follow_chart_download_stop_delete(world, browser):
    from boatload.models import Container

    b = browser()
    b.login("alice")
    assert b.driver.current_url.endswith("/console/")
    b.wait.until(lambda d: world["host"].name in b.find("#dashboard").text)  # htmx swaps the panel in at once
    assert_every_control_labelled(b)

    # Create from the form, with a script, by keyboard only (Tab to the button, Enter).
    b.get("/console/containers/new")
    b.find("#f-image_name").send_keys(IMAGE_NAME)
    b.find("#f-image_tag").clear()
    b.find("#f-image_tag").send_keys(IMAGE_TAG)
    b.find("#f-name").send_keys(MADE)
    b.find("#f-script").send_keys(SCRIPT)
    b.find("#f-env").send_keys("GREETING=hi")
    b.find("#f-ports").send_keys("8080/tcp host")
    assert_every_control_labelled(b)
    b.shot("create")
    b.find("#create").send_keys(Keys.ENTER)
    b.wait.until(lambda d: re.search(r"/console/container/[0-9a-f-]{36}/$", d.current_url))
    uuid = b.driver.current_url.rstrip("/").rsplit("/", 1)[1]
    row = Container.objects.get(uuid=uuid)
    assert (row.owner.username, row.state, row.spec["env"]) == ("alice", "running", {"GREETING": "hi"})

    # The live log follows: the first line, then ticks that were printed after the page loaded.
    b.wait.until(lambda d: "hello-from-console" in b.find("#log").text)
    b.wait.until(lambda d: re.search(r"tick [3-9]", b.find("#log").text))
    assert b.find("#log-follow").is_selected()

    # The chart draws points on a time axis of the last minutes, from its first sample on (uPlot's own
    # guess for one point is a range of years), and pixels of the memory line on its canvas.
    b.wait.until(lambda d: chart_state(b)["points"] >= 4)
    assert_chart_spans_now(chart_state(b), points=4)
    assert canvas_has_colour(b, "#chart-cpu-mem", (22, 163, 74)), "memory series not drawn"
    assert "MiB" in b.find("#metrics-now").text
    endpoint = b.find(".endpoints input").get_attribute("value")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", endpoint)

    # Changed files and the archives are plain links; fetch them as the browser's session would.
    # A fresh page: the chart, read at every sample count from its first (a sample every 2 s, read every
    # 0.2 s), spans the last minutes all along, not only once it holds several samples.
    b.driver.refresh()
    seen = {}
    b.wait.until(lambda d: seen.setdefault((state := chart_state(b))["points"], state)["points"] >= 4)
    assert 1 in seen, sorted(seen)
    for state in seen.values():
        if state["points"]:
            assert_chart_spans_now(state)
    [link] = b.wait.until(lambda d: [a for a in b.all("a.file") if a.text == "/out/result.txt"])
    http = b.session()
    assert http.get(link.get_attribute("href"), timeout=30).content == b"payload-123\n"
    [odd] = [a for a in b.all("a.file") if a.text == ODD_FILE]
    assert http.get(odd.get_attribute("href"), timeout=30).content == b"odd-bytes\n"
    tar = http.get(b.find("#archive-tar").get_attribute("href"), timeout=30)
    with tarfile.open(fileobj=io.BytesIO(tar.content)) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("out/result.txt"))
        assert archive.extractfile(member).read() == b"payload-123\n"
    gz = http.get(b.find("#archive-gz").get_attribute("href"), timeout=30)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(gz.content))) as archive:
        assert any(m.name.endswith("out/result.txt") for m in archive.getmembers())
    whole_log = http.get(b.find("#log-download").get_attribute("href"), timeout=30).text
    assert whole_log.startswith("hello-from-console\n")
    assert MADE in b.find("#inspect").get_attribute("textContent")
    assert "hello-from-console" in b.find("#script").text
    assert_every_control_labelled(b)
    b.shot("container")
    b.shot("container-390", width=390)

    # Stop by keyboard, start and restart, stop again, then delete (confirmed).
    b.find("#do-stop").send_keys(Keys.ENTER)
    b.wait.until(lambda d: b.find("#platform-state").text == "exited")
    row.refresh_from_db()
    assert row.state == "exited"
    for action in ("start", "restart"):
        b.find(f"#do-{action}").click()
        b.wait.until(lambda d, action=action: f"{action}: the container is running" in b.find(".messages").text)
        row.refresh_from_db()
        assert (row.state, b.find("#platform-state").text) == ("running", "running"), action
    b.find("#do-stop").click()
    b.wait.until(lambda d: b.find("#platform-state").text == "exited")
    b.find("#do-delete").click()
    b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#confirm"))  # a page of its own, not a dialog
    row.refresh_from_db()
    assert row.state == "exited"  # nothing is deleted before the confirmation
    b.shot("confirm-delete")
    b.find("#confirm").click()
    b.wait.until(lambda d: d.current_url.endswith("/console/containers/") and b.all(".messages")
                 and d.execute_script("return document.readyState") == "complete")
    assert uuid not in [tr.get_attribute("data-id") for tr in b.all("#containers tr[data-id]")]
    assert_every_control_labelled(b)
    b.shot("containers")
    b.shot("containers-390", width=390)
    row.refresh_from_db()
    assert row.state == "deleted"
    listed = world["satellite"].signed().get(f"{world['satellite'].url}/containers", timeout=10).json()
    assert uuid not in [item["labels"].get("boatload.container") for item in listed]


def dashboard_snapshot(browser, host):
    """The dashboard's live figures, read in one script run (so never half from one panel, half from the next)."""
    return browser.driver.execute_script("""
        const text = s => { const e = document.querySelector(s); return e ? e.textContent : ""; };
        const attr = (s, a) => { const e = document.querySelector(s); return e ? e.getAttribute(a) : null; };
        const running = {};
        for (const td of document.querySelectorAll(`#dashboard-services tr[data-service="${arguments[1]}"] td.running`))
          running[td.parentElement.dataset.compute] = td.textContent.trim();
        const h = `#host-${arguments[0]}`;
        return {running, unreachable: text("#hosts-unreachable"), silent: text("#host-silent-host"),
                cpu: text(`${h} td.cpu-now`), cpu_running: attr(`${h} td.cpu-now`, "data-running"),
                memory_bytes: attr(`${h} td.memory-now`, "data-bytes"), fleet_cpu: text("#fleet-cpu")};""",
        host, LIVE)


def test_dashboard_shows_use_now_and_running_live(world, browser, docker_client, django_db_blocker):
    """CPU and memory now per host from the satellites' /stats, a host that does not answer named; running
    per compute as each connector says now (not the last order's number), a failing compute shown as such.
    Its rows are committed (not in a test transaction): the API process must see them."""
    from django.utils import timezone

    from boatload.models import Host
    from genisys import services as genisys_services
    from genisys.models import Compute, Desired, Service

    with django_db_blocker.unblock():
        alice = world["users"]["alice"]
        # Not in a test transaction, so pytest-django runs this test after those that are: the staff test
        # drained the host by then.
        Host.objects.filter(pk=world["host"].pk).update(state=Host.State.ACTIVE)
        service = Service.objects.create(name=LIVE, image=f"{IMAGE_NAME}:{IMAGE_TAG}", command="sleep 3600",
                                         owner=alice)
        # Draining (no placement there), so still asked for its use; nothing listens on its port.
        silent = Host.objects.create(name="silent-host", satellite_url=f"http://127.0.0.1:{free_port()}",
                                     key_id="silent", secret="silent-secret", state=Host.State.DRAINING,
                                     last_seen=timezone.now(), cpus=1)
        broken = Compute.objects.create(name="broken", connector=f"http://127.0.0.1:{free_port()}")
        try:
            assert genisys_services.service_scale(service=service, user=alice, number=2, compute="local")["number"] == 2
            Desired.objects.create(service=service, compute=broken, number=1)
            docker_client.containers.get(f"bl-{LIVE}-1").remove(force=True)  # the last order said 2: 1 runs now

            b = browser()
            b.login("alice")
            # htmx replaces the panel every 5 s: each look at it is one snapshot taken in the page.
            b.wait.until(lambda d: dashboard_snapshot(b, world["host"].name)["running"].get("local") == "1")
            page = dashboard_snapshot(b, world["host"].name)
            assert "compute failing" in page["running"]["broken"], page
            assert "silent-host" in page["unreachable"] and "not answering" in page["silent"], page

            listed = world["satellite"].signed().get(f"{world['satellite'].url}/stats", timeout=30).json()
            assert int(page["cpu_running"]) == sum(1 for m in listed.values() if m.get("running")), page
            assert "%" in page["cpu"] and "of 2 CPUs" in page["cpu"], page
            assert int(page["memory_bytes"]) > 0 and "%" in page["fleet_cpu"], page
            assert_every_control_labelled(b)
            b.shot("dashboard")
            b.shot("dashboard-390", width=390)
        finally:
            Desired.objects.filter(compute=broken).delete()
            genisys_services.service_scale(service=service, user=alice, number=0, compute="local")
            service.delete()
            broken.delete()
            silent.delete()


def test_the_chart_starts_with_the_containers_history(world, browser, django_db_blocker):
    """On load the chart draws what the reconciler kept (GET …/metrics/history), then adds live samples."""
    import time

    from django.conf import settings

    from observe.models import MetricPoint

    kept = world["kept"]
    step = int(settings.FLEET_INTERVAL)  # the history's default step: the API server's is the same
    now = int(time.time()) // step * step
    ts = [now - 20 * step, now - 14 * step, now - 7 * step]
    with django_db_blocker.unblock():
        MetricPoint.objects.bulk_create([
            MetricPoint(t=t, host=world["host"].name, container=str(kept.uuid), owner=world["users"]["alice"],
                        memory_bytes=(i + 1) * 1024 * 1024, cpu_percent=1.0) for i, t in enumerate(ts)])
        try:
            b = browser()
            b.login("alice")
            b.get(f"/console/container/{kept.uuid}/")
            b.wait.until(lambda d: b.find("#metrics-section").get_attribute("data-history-points") == "3")
            state = b.wait.until(lambda d: (state := chart_state(b))["points"] >= 4 and state)
            assert state["xs"][:3] == ts and state["memory"][:3] == [1, 2, 3], state
            assert state["xs"][3] > ts[-1]  # then the live samples
        finally:
            MetricPoint.objects.filter(container=str(kept.uuid)).delete()


@pytest.mark.django_db
def test_a_kept_alive_connection_serves_its_next_request_after_a_follow_stream(world):
    """The browser reuses the connection of a follow stream that ended (the container stopped) for its next
    request. Under gunicorn's gevent worker the stream's disconnect watcher must have let go of the socket by
    then, or the next request fails with a bare 500 (gevent: a socket used by two greenlets)."""
    import http.client
    import json
    import time

    token = jwt_for(world["users"]["ops"])
    headers = {"Authorization": f"Bearer {token}"}
    made = requests.post(world["server"].url + "/v1/container/", timeout=60, headers=headers, json={
        "image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "command": ["echo", "done"]})
    assert made.status_code == 201, made.text
    uuid = made.json()["id"]
    deadline = time.monotonic() + 30
    while requests.get(f"{world['server'].url}/v1/container/{uuid}/state", headers=headers,
                       timeout=30).json()["platform_state"] != "exited":
        assert time.monotonic() < deadline, "the container did not exit"
        time.sleep(0.2)
    connection = http.client.HTTPConnection("127.0.0.1", world["server"].port, timeout=30)
    try:
        for attempt in range(20):
            connection.request("GET", f"/v1/container/{uuid}/stdout?follow=true", headers=headers)
            stream = connection.getresponse()
            assert (stream.status, stream.read()) == (200, b"done\n"), attempt
            connection.request("GET", f"/v1/container/{uuid}/state", headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            assert answer.status == 200, (attempt, answer.status, body[:200])
            assert json.loads(body)["platform_state"] == "exited"
    finally:
        connection.close()

@pytest.mark.django_db
def test_bad_input_is_shown_next_to_its_field_and_makes_nothing(world, browser):
    from boatload.models import Container

    before = Container.objects.count()
    b = browser()
    b.login("alice")
    b.get("/console/containers/new")
    b.find("#f-image_name").send_keys(IMAGE_NAME)
    b.find("#f-ports").send_keys("99999/tcp")
    b.find("#create").click()
    error = b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#err-ports"))[0]
    assert "ports[0].port" in error.text
    assert b.find("#f-image_name").get_attribute("value") == IMAGE_NAME  # the form keeps what was typed
    assert b.find("#f-ports").get_attribute("aria-describedby") == "err-ports"
    assert Container.objects.count() == before

    # A value no control of the form offers (a forged post) is refused next to its field too, as HTML.
    http = b.session()
    token = b.driver.get_cookie("csrftoken")["value"]
    answer = http.post(world["server"].url + "/console/containers/new", timeout=30,
                       data={"image_name": IMAGE_NAME, "restart": "sometimes", "csrfmiddlewaretoken": token},
                       headers={"Referer": world["server"].url + "/console/containers/new"})
    assert answer.status_code == 400 and answer.headers["Content-Type"].startswith("text/html")
    slot = re.search(r'<p class="error" id="err-restart">([^<]*)</p>', answer.text)
    assert slot and "restart" in slot.group(1), answer.text[:2000]
    assert Container.objects.count() == before


@pytest.mark.django_db
def test_many_instances_show_each_result(world, browser):
    from boatload.models import Container

    b = browser()
    b.login("alice")
    b.get("/console/containers/new")
    b.find("#f-image_name").send_keys(IMAGE_NAME)
    b.find("#f-command").send_keys("sleep 3600")
    b.find("#f-name").send_keys(MANY)
    b.find("#f-instances").send_keys("3")
    b.find("#create").click()
    done = b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#progress-done"))[0]
    assert done.text == "3 of 3 created."
    assert len(b.all("#progress li.ok")) == 3
    b.shot("create-progress")
    made = Container.objects.filter(name__startswith=f"{MANY}-", owner__username="alice")
    assert sorted(made.values_list("state", flat=True)) == ["running"] * 3
    for row in made:
        b.get(f"/console/container/{row.uuid}/")
    # Bulk stop, then bulk delete: each only after its confirmation page, which lists the rows.
    for action, state in (("stop", "exited"), ("delete", "deleted")):
        b.get(f"/console/containers/?q={MANY}")
        boxes = b.all("#containers tbody input[type=checkbox]")
        assert len(boxes) == 3
        for box in boxes:
            box.click()
        b.find("select[name=action]").send_keys(action)
        b.find(".bar button[type=submit]").click()
        b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#confirm"))
        assert sorted(made.values_list("state", flat=True)) == ["running" if action == "stop" else "exited"] * 3
        assert all(row.name in b.find("main").text for row in made)
        b.shot(f"confirm-bulk-{action}")
        b.find("#confirm").click()
        b.wait.until(lambda d, action=action: f"{action}: 3 of 3" in b.find(".messages").text)
        assert sorted(made.values_list("state", flat=True)) == [state] * 3


@pytest.mark.django_db
def test_scale_a_service_to_three(world, browser):
    from genisys.models import ScaleOrder

    b = browser()
    b.login("alice")
    b.get("/console/services/")
    b.driver.find_element(By.LINK_TEXT, WEB).click()
    b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#f-number"))
    assert_every_control_labelled(b)
    # A bad number is shown next to its field, and orders nothing.
    b.find("#f-number").send_keys("-1")
    b.find("#scale").click()
    error = b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#err-number"))[0]
    assert "number" in error.text and b.find("#f-number").get_attribute("aria-describedby") == "err-number"
    assert not ScaleOrder.objects.filter(service__name=WEB).exists()
    b.find("#f-number").clear()
    b.find("#f-number").send_keys("3")
    Select(b.find("#f-compute")).select_by_value("*")  # all computes (spread); here there is one
    b.find("#scale").click()
    b.wait.until(lambda d: f"Scaled {WEB} to 3" in b.find(".messages").text)
    assert b.find("#running-total").text == "3"
    status = {tr.find_element(By.CSS_SELECTOR, "td").text: tr.find_elements(By.CSS_SELECTOR, "td")[2].text
              for tr in b.all("#status tbody tr") if tr.find_elements(By.CSS_SELECTOR, "td + td + td")
              and not tr.find_elements(By.CSS_SELECTOR, "th")}
    assert status == {"local": "3"}, status
    assert "alice" in b.find("#orders tbody tr td:nth-child(2)").text  # the order's requester, newest first
    # The order made a deployment (as through the API), shown with its versions and who started it.
    from genisys.models import Deployment

    latest = Deployment.objects.filter(service__name=WEB).first()
    assert latest is not None and latest.kind == "scale"
    shown = b.find("#deployment").text
    assert f"Deployment {latest.id}" in shown and "started by alice" in shown and latest.get_state_display() in shown
    run_key, run_value = RUN_LABEL.split("=")
    names = sorted(item["name"] for item in world["satellite"].signed().get(
        f"{world['satellite'].url}/containers", timeout=10).json()
        if item["labels"].get("boatload.service") == WEB and item["labels"].get(run_key) == run_value)
    assert names == [f"bl-{WEB}-{slot}" for slot in range(3)]
    b.shot("service")
    b.get("/console/")
    b.wait.until(lambda d: WEB in b.find("#dashboard").text)
    b.get(f"/console/service/{WEB}/")
    b.find("#f-number").send_keys("0", Keys.ENTER)
    b.wait.until(lambda d: f"Scaled {WEB} to 0" in b.find(".messages").text)


def test_a_deployment_is_paused_resumed_and_rolled_back_from_its_service_page(world, browser, django_db_blocker):
    """The latest deployment's controls on the service page: pause, resume, then roll back after a confirmation
    page (nothing changes before it); its progress is redrawn without a page reload while it is active. Another
    user's forged POST to the controls finds nothing (404)."""
    from django.db import transaction

    from genisys import deploy
    from genisys.models import Compute, Desired, Service

    name = f"dep{RUN_ID}"
    with django_db_blocker.unblock():
        service = Service.objects.create(name=name, image=f"{IMAGE_NAME}:{IMAGE_TAG}", command="sleep 3600",
                                         owner=world["users"]["alice"])
        try:
            with transaction.atomic():
                deploy.version_record(service=service, user=world["users"]["alice"])  # version 1
            # One slot desired (no reconciler runs here, so the deployment stays running until told otherwise).
            Desired.objects.create(service=service, compute=Compute.objects.get(name="local"), number=1)
            service.command = "sleep 3601"
            service.save()
            deployment = deploy.definition_changed(service=service, user=world["users"]["alice"])  # 1 → 2
            assert (deployment.state, deployment.from_version, deployment.to_version) == ("running", 1, 2)

            b = browser()
            b.login("alice")
            b.get(f"/console/service/{name}/")
            assert "Running" in b.find("#deployment h2").text and b.all("#deployment-resume") == []

            def click(css):
                """Find and click in one go: htmx may swap the section between a find and a click."""
                b.wait.until(lambda d: b.find(css).click() or True)
            assert_every_control_labelled(b)
            # The reconciler's progress shows up in the page by itself (htmx, the same document).
            type(deployment).objects.filter(pk=deployment.pk).update(
                progress={"local": {"desired": 1, "updated": 1, "healthy": 0, "failed": 0}})
            b.wait.until(lambda d: "local" in b.find("#deployment-progress tbody").text)
            assert b.driver.execute_script("return performance.getEntriesByType('navigation').length") == 1

            def state():
                deployment.refresh_from_db()
                return deployment.state
            click("#deployment-pause")
            b.wait.until(lambda d: "pause: deployment" in b.find(".messages").text)
            assert state() == "paused"
            b.wait.until(lambda d: "Paused" in b.find("#deployment h2").text)
            click("#deployment-resume")
            b.wait.until(lambda d: "resume: deployment" in b.find(".messages").text)
            assert state() == "running"
            click("#deployment-rollback")
            b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#confirm"))
            service.refresh_from_db()
            assert (state(), deployment.rolling_back, service.command, service.version) == ("running", False,
                                                                                         "sleep 3601", 2)
            b.shot("confirm-rollback")
            b.find("#confirm").click()
            b.wait.until(lambda d: "rollback: deployment" in b.find(".messages").text)
            service.refresh_from_db()
            assert (state(), deployment.rolling_back, service.command, service.version) == ("running", True,
                                                                                         "sleep 3600", 1)
            b.wait.until(lambda d: "rolling back to 1" in b.find("#deployment").text)
            assert b.all("#deployment-rollback") == []
            b.shot("service-deployment")

            bob = browser()
            bob.login("bob")
            http = bob.session()
            headers = {"X-CSRFToken": bob.driver.get_cookie("csrftoken")["value"],
                       "Referer": world["server"].url + "/console/"}
            for action in ("pause", "rollback"):
                answer = http.post(f"{world['server'].url}/console/service/{name}/deployment/{deployment.pk}/{action}",
                                   data={"confirm": "yes"}, headers=headers, timeout=30)
                assert answer.status_code == 404, action
            assert state() == "running"
        finally:
            service.delete()


@pytest.mark.django_db
def test_a_user_sees_only_their_own_and_no_staff_control(world, browser):
    from boatload.models import Host, JoinToken

    kept = world["kept"]
    b = browser()
    b.login("bob")
    b.get("/console/containers/")
    assert str(kept.uuid) not in [tr.get_attribute("data-id") for tr in b.all("#containers tr[data-id]")]
    assert KEPT not in b.find("main").text
    b.get("/console/services/")
    assert WEB not in b.find("main").text
    b.get("/console/hosts/")
    assert world["host"].name in b.find("#hosts").text
    assert b.all("#jointoken") == []
    b.shot("hosts-user")
    # No page shows a plain user a staff control: none marked staff, no form posting to a staff route.
    for path in ("/console/", "/console/containers/", "/console/containers/new", "/console/services/",
                 "/console/hosts/"):
        b.get(path)
        assert_no_staff_control(b)
    owner = browser()
    owner.login("alice")
    for path in (f"/console/container/{kept.uuid}/", f"/console/service/{WEB}/", f"/console/containers/?q={KEPT}"):
        owner.get(path)
        assert KEPT in owner.find("main").text or WEB in owner.find("main").text
        assert_no_staff_control(owner)

    # Forged POSTs, with a valid session and CSRF token: staff actions are 403, another's container 404.
    http = b.session()
    b.get("/console/hosts/")
    token = b.driver.get_cookie("csrftoken")["value"]
    headers = {"X-CSRFToken": token, "Referer": world["server"].url + "/console/hosts/"}
    forged = staff_routes(world["host"].name)
    assert {"/console/hosts/jointoken", f"/console/host/{world['host'].name}/rotate-key"} <= set(forged)
    for path in forged:
        answer = http.post(world["server"].url + path, data={"confirm": "yes", "note": "forged"}, headers=headers,
                           timeout=30)
        assert answer.status_code == 403, path
        assert answer.json()["error"]["code"] == "permission_denied", path
    for action in ("stop", "delete"):
        answer = http.post(f"{world['server'].url}/console/container/{kept.uuid}/{action}", headers=headers,
                           timeout=30)
        assert answer.status_code == 404
    assert http.get(f"{world['server'].url}/console/container/{kept.uuid}/", timeout=30).status_code == 404
    answer = http.post(world["server"].url + "/console/containers/bulk",
                       data={"action": "delete", "confirm": "yes", "ids": [str(kept.uuid)]}, headers=headers,
                       timeout=30)
    assert "delete: " not in answer.text
    assert Host.objects.get(pk=world["host"].pk).state == "active"
    assert Host.objects.get(pk=world["host"].pk).next_key_id == ""  # no key rotation was started
    assert not JoinToken.objects.filter(note="forged").exists()
    kept.refresh_from_db()
    assert kept.state == "running"


@pytest.mark.django_db
def test_staff_see_everything_and_add_a_host(world, browser):
    from boatload.models import Container, JoinToken

    b = browser()
    b.login("ops")
    b.get("/console/containers/")
    assert str(world["kept"].uuid) in [tr.get_attribute("data-id") for tr in b.all("#containers tr[data-id]")]
    b.get(f"/console/container/{world['kept'].uuid}/")
    assert "alice" in b.find(".facts").text
    b.get("/admin/")  # the same login; the admin's "View site" leads back to the console
    b.wait.until(lambda d: d.find_elements(By.ID, "user-tools"))
    links = b.driver.execute_script(  # textContent: the admin's CSS upper-cases what the user sees
        "return [...document.querySelectorAll('#user-tools a')].map(a => [a.textContent.trim(), a.pathname])")
    assert ["View site", "/console/"] in links, links

    # The dashboard refreshes itself: a new container shows up in the totals without a reload.
    b.get("/console/")
    total = b.wait.until(lambda d: b.find(".totals").text)
    made = requests.post(world["server"].url + "/v1/container/", timeout=60, json={
        "image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "command": ["sleep", "3600"]},
        headers={"Authorization": f"Bearer {jwt_for(world['users']['ops'])}"})
    assert made.status_code == 201, made.text
    b.wait.until(lambda d: b.find(".totals").text != total)
    assert b.driver.execute_script("return performance.getEntriesByType('navigation').length") == 1

    b.get("/console/hosts/")
    b.find("#f-note").send_keys("rack 4")
    b.find("#jointoken").click()
    command = b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#join-command"))[0].get_attribute("value")
    token = re.search(r"SATELLITE_JOIN_TOKEN=(\S+)", command).group(1)
    assert JoinToken.usable(token) is not None and JoinToken.usable(token).note == "rack 4"
    assert command.startswith("docker run ") and command.rstrip().endswith(" satellite")
    # Copyable: the Copy button puts the whole command on the clipboard; pasted into a field, it is all there.
    copy = b.find("button[data-copy-from='join-command']")
    copy.click()
    b.wait.until(lambda d: copy.get_attribute("data-copied"))
    assert (copy.get_attribute("data-copied"), copy.text) == ("yes", "Copied")
    b.driver.execute_script("const t = document.createElement('textarea'); t.id = 'pasted'; t.ariaLabel = 'pasted';"
                            "document.querySelector('main').append(t); t.focus();")
    ActionChains(b.driver).key_down(Keys.CONTROL).send_keys("v").key_up(Keys.CONTROL).perform()
    assert b.find("#pasted").get_attribute("value") == command
    b.driver.execute_script("document.getElementById('pasted').remove()")
    b.shot("jointoken")
    b.get("/console/hosts/")
    assert_every_control_labelled(b)
    b.shot("hosts-staff")
    row = next(tr for tr in b.all("#hosts tbody tr") if world["host"].name in tr.text)
    row.find_element(By.XPATH, ".//button[text()='Drain…']").click()
    b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#confirm"))
    b.find("#confirm").click()
    b.wait.until(lambda d: "drain: " in b.find(".messages").text)
    world["host"].refresh_from_db()
    assert world["host"].state == "draining"
    assert Container.objects.filter(owner__username="alice", name=KEPT).exists()


def test_the_containers_table_filters_searches_and_pages_on_the_server(world, browser, django_db_blocker):
    """The one table of every host's containers: filters (state, host, image, owner for staff) and search narrow
    it on the server, and it pages 25 rows at a time (the next page holds the rest, none twice)."""
    from boatload.models import Container, Host

    prefix = f"row{RUN_ID}"
    with django_db_blocker.unblock():
        other = Host.objects.create(name=f"other-{RUN_ID}", satellite_url=f"http://127.0.0.1:{free_port()}",
                                    key_id="other", secret="other-secret", state=Host.State.DRAINING)
        # 30 exited rows of alice's on the world's host, 3 of bob's, failed, on another host (rows only: the
        # table reads the database).
        Container.objects.bulk_create(
            [Container(owner=world["users"]["alice"], host=world["host"], name=f"{prefix}-a{n:02}",
                       image_name="img/alice", state=Container.State.EXITED) for n in range(30)]
            + [Container(owner=world["users"]["bob"], host=other, name=f"{prefix}-b{n}", image_name="img/bob",
                         state=Container.State.FAILED) for n in range(3)])
        try:
            b = browser()
            b.login("ops")

            def listed(query):
                b.get(f"/console/containers/?{query}")
                names = [a.text for a in b.all("#containers tbody td:nth-child(2) a")]
                return names, b.find(".pages").text
            names, pages = listed(f"q={prefix}")
            assert len(names) == 25 and "Page 1 of 2 (33)" in pages, pages
            b.find(".pages a[href*='page=2']").click()
            b.wait.until(lambda d: "Page 2 of 2" in b.find(".pages").text)
            rest = [a.text for a in b.all("#containers tbody td:nth-child(2) a")]
            assert len(rest) == 8 and not set(rest) & set(names) and "q=" in b.driver.current_url
            assert sorted(listed(f"q={prefix}&state=failed")[0]) == [f"{prefix}-b{n}" for n in range(3)]
            assert sorted(listed(f"q={prefix}&host={other.name}")[0]) == [f"{prefix}-b{n}" for n in range(3)]
            names, pages = listed(f"q={prefix}&image=img/alice")
            assert "(30)" in pages and all("-a" in name for name in names), pages
            assert sorted(listed(f"q={prefix}&owner=bob")[0]) == [f"{prefix}-b{n}" for n in range(3)]
            # The filter form itself, as a user fills it in: the search and a state chosen from the list.
            b.get("/console/containers/")
            b.find("input[name=q]").send_keys(f"{prefix}-a0")
            Select(b.find("select[name=state]")).select_by_value("exited")
            b.find(".filters button[type=submit]").click()
            b.wait.until(lambda d: "state=exited" in d.current_url)
            assert sorted(a.text for a in b.all("#containers tbody td:nth-child(2) a")) == [
                f"{prefix}-a0{n}" for n in range(10)]
            b.shot("containers-filtered")

            user = browser()
            user.login("bob")  # a plain user's table holds only their rows, whatever the owner filter says
            user.get(f"/console/containers/?q={prefix}&owner=alice")
            assert sorted(a.text for a in user.all("#containers tbody td:nth-child(2) a")) == [
                f"{prefix}-b{n}" for n in range(3)]
        finally:
            Container.objects.filter(name__startswith=prefix).delete()
            other.delete()


def test_keyboard_only_creates_follows_the_log_and_stops(world, browser, host_active):
    """Tab, Shift+Tab, Enter and Space only, typed into whatever has the focus: log in, open the create form
    from the menu, fill it, create; turn following off and on again; stop; delete through its confirmation."""
    from boatload.models import Container

    b = browser()
    b.get("/")
    b.wait.until(lambda d: "/console/login/" in d.current_url)
    tab_to(b, "#id_username")
    press(b, "alice", Keys.TAB, PASSWORDS["alice"], Keys.ENTER)
    b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "form.who"))
    tab_to(b, "nav a[href='/console/containers/new']")
    press(b, Keys.ENTER)
    b.wait.until(lambda d: d.current_url.endswith("/console/containers/new") and d.find_elements(By.ID, "f-image_name"))
    tab_to(b, "#f-image_name")
    press(b, IMAGE_NAME)
    tab_to(b, "#f-name")
    press(b, KEYS)
    tab_to(b, "#f-script")
    press(b, "echo keyboard-hello; i=0; while [ $i -lt 300 ]; do echo tick $i; i=$((i+1)); sleep 1; done")
    tab_to(b, "#create")
    b.shot("create-keyboard")
    press(b, Keys.ENTER)
    b.wait.until(lambda d: re.search(r"/console/container/[0-9a-f-]{36}/$", d.current_url))
    row = Container.objects.get(uuid=b.driver.current_url.rstrip("/").rsplit("/", 1)[1])
    assert (row.name, row.owner.username, row.state) == (KEYS, "alice", "running")
    b.wait.until(lambda d: "keyboard-hello" in b.find("#log").text)

    # Follow off (Space on the checkbox): the log is read once and its stream ends. On again: new ticks come.
    tab_to(b, "#log-follow")
    press(b, Keys.SPACE)
    assert not b.find("#log-follow").is_selected()
    b.wait.until(lambda d: b.find("#log").get_attribute("data-ended") == "1")
    last = max(int(n) for n in re.findall(r"tick (\d+)", b.find("#log").text) or ["-1"])
    press(b, Keys.SPACE)
    assert b.find("#log-follow").is_selected()
    b.wait.until(lambda d: max(int(n) for n in re.findall(r"tick (\d+)", b.find("#log").text) or ["-1"]) > last + 1)
    assert b.find("#log").get_attribute("data-ended") is None  # following: the stream stays open

    tab_to(b, "#do-stop", back=True)  # the actions come before the log
    press(b, Keys.ENTER)
    b.wait.until(lambda d: b.find("#platform-state").text == "exited")
    row.refresh_from_db()
    assert row.state == "exited"
    tab_to(b, "#do-delete")
    press(b, Keys.ENTER)
    b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#confirm"))
    tab_to(b, "#confirm")
    press(b, Keys.SPACE)
    b.wait.until(lambda d: d.current_url.endswith("/console/containers/") and b.all(".messages"))
    row.refresh_from_db()
    assert row.state == "deleted"


@pytest.mark.django_db
@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_main_pages_fit_the_window_without_horizontal_scroll(world, browser, width, height):
    """At 1280×800 and at 390 px wide, no main page is wider than the window; every control is labelled."""
    b = browser(width=width, height=height)
    b.login("ops")
    assert b.driver.execute_script("return document.documentElement.clientWidth") <= width
    pages = {"dashboard": "/console/", "containers": "/console/containers/", "create": "/console/containers/new",
             "container": f"/console/container/{world['kept'].uuid}/", "services": "/console/services/",
             "service": f"/console/service/{WEB}/", "hosts": "/console/hosts/"}
    for name, path in pages.items():
        b.get(path)
        if name == "dashboard":
            b.wait.until(lambda d: b.all("#dashboard .cpu-now, #dashboard .unreachable"))  # the live panel is in
        if name == "container":
            b.wait.until(lambda d: chart_state(b)["points"] >= 1)  # the charts are drawn at their width
        assert_no_horizontal_scroll(b)
        assert_every_control_labelled(b)
        b.shot(f"fit-{name}-{width}")
    b.get("/console/hosts/")
    b.find("#jointoken").click()
    b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#join-command"))
    assert_no_horizontal_scroll(b)
    b.shot(f"fit-jointoken-{width}")


def test_hosts_drain_rotate_a_key_and_unregister_after_a_confirmation(world, browser, django_db_blocker):
    """Staff drain a host, rotate its key and unregister it, each only once confirmed: the first POST (the
    host row's button) changes nothing and shows the confirmation page, its "Yes" does it. Its containers are
    then lost, and the dashboard's last failures link to them."""
    from django.utils import timezone

    from boatload.models import Container, Host
    from common import sealing

    name = f"spare-{RUN_ID}"
    with django_db_blocker.unblock():
        # Its seal key lets a new key be delivered. Active until the test drains it, first thing.
        spare = Host.objects.create(name=name, satellite_url=f"http://127.0.0.1:{free_port()}", key_id="spare",
                                    secret="spare-secret", state=Host.State.ACTIVE, last_seen=timezone.now(),
                                    seal_public_key=sealing.public_text(sealing.new_private_key()))
        held = Container.objects.create(owner=world["users"]["alice"], host=spare, name=f"held-{RUN_ID}",
                                        image_name=IMAGE_NAME, state=Container.State.RUNNING, docker_id="0" * 64)
        try:
            b = browser()
            b.login("ops")
            b.get("/console/hosts/")
            def click_in_row(label):
                """Click `label` in the spare host's row; found again if the page was swapped meanwhile."""
                def attempt(driver):
                    row = next(tr for tr in b.all("#hosts tbody tr") if name in tr.text)
                    row.find_element(By.XPATH, f".//button[text()='{label}']").click()
                    return True
                b.wait.until(attempt)

            def before_and_after(action):
                """The host's row, and whether `action` is done."""
                row = Host.objects.filter(name=name).values("state", "next_key_id").first()
                done = {"drain": row and row["state"] == "draining",
                        "rotate-key": row and row["next_key_id"] not in ("", "spare"), "unregister": row is None}
                return row, done[action]

            for label, action in (("Drain…", "drain"), ("Rotate key…", "rotate-key"), ("Unregister…", "unregister")):
                row_before, done = before_and_after(action)
                assert not done
                click_in_row(label)
                b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#confirm"))
                assert name in b.find("h1").text and b.find("#cancel").get_attribute("href").endswith("/console/hosts/")
                assert before_and_after(action) == (row_before, False)  # nothing happens before the confirmation
                assert_every_control_labelled(b)
                b.shot(f"confirm-{action}")
                b.find("#confirm").click()
                b.wait.until(lambda d, action=action: f"{action}: {name} done" in b.find(".messages").text)
                assert before_and_after(action)[1], action
            assert not Host.objects.filter(name=name).exists()
            held.refresh_from_db()
            assert held.state == "lost" and name in held.last_error

            b.get("/console/")
            # The panel refreshes itself: the link is read whole inside the wait, which retries a swapped-out one.
            href = b.wait.until(lambda d: [a.get_attribute("href") for a in b.all("#last-failures a")
                                           if a.text == held.name])[0]
            assert urlsplit(href).path == f"/console/container/{held.uuid}/"
        finally:
            Container.objects.filter(pk=held.pk).delete()
            Host.objects.filter(name=name).delete()


def test_the_dashboard_lists_the_last_failures_with_links(world, browser, django_db_blocker, host_active):
    """A create that failed (from the form), a scale order that failed and deployments that failed or were
    rolled back are listed, newest first, each with a link to its page and its reason; another user's
    service's failed deployment is not."""
    from django.utils import timezone

    from boatload.models import Container
    from genisys.models import Compute, Deployment, Service

    alice_api = {"Authorization": f"Bearer {jwt_for(world['users']['alice'])}"}
    ops_api = {"Authorization": f"Bearer {jwt_for(world['users']['ops'])}"}
    with django_db_blocker.unblock():
        try:
            b = browser()
            b.login("alice")
            b.get("/console/containers/new")
            b.find("#f-image_name").send_keys(IMAGE_NAME)
            b.find("#f-name").send_keys(FAILS)
            b.find("#f-command").send_keys("/no/such/program")
            b.find("#create").click()
            b.wait.until(lambda d: re.search(r"/console/container/[0-9a-f-]{36}/$", d.current_url))
            failed = Container.objects.get(name=FAILS)
            assert failed.state == "failed" and failed.last_error
            assert "The create failed" in b.find(".messages").text

            made = requests.post(world["server"].url + "/compute", headers=ops_api, timeout=30,
                                 json={"name": BROKEN, "connector": f"http://127.0.0.1:{free_port()}"})
            assert made.status_code == 201, made.text
            scaled = requests.post(f"{world['server'].url}/service/{WEB}/scale", headers=alice_api, timeout=60,
                                   json={"number": 1, "compute": BROKEN})
            assert scaled.status_code == 502, scaled.text
            # Deployments as the reconciler leaves them when one fails or rolls back (genisys.deploy._finish),
            # newer than the failures above; the newest of all is of bob's service, which alice does not see.
            web = Service.objects.get(name=WEB)
            hidden = Service.objects.create(name=f"bobs-{RUN_ID}", image=f"{IMAGE_NAME}:{IMAGE_TAG}",
                                            owner=world["users"]["bob"])
            ended = [Deployment.objects.create(
                service=service, kind="definition", from_version=1, to_version=2, target_version=target,
                rolling_back=state == "rolled_back", state=state, reason=reason, policy={},
                progressed=timezone.now(), finished=timezone.now(),
                progress={"local": {"desired": 1, "updated": 1, "healthy": 0, "failed": 1}} if state == "failed"
                else {})
                for service, state, target, reason in (
                    (web, "failed", 2, f"failed-{RUN_ID}: slot 0 on local never became healthy"),
                    (web, "rolled_back", 1, f"rolled-{RUN_ID}: rollback requested"),
                    (hidden, "failed", 2, f"hidden-{RUN_ID}"))]

            b.get("/console/")
            b.wait.until(lambda d: f"rolled-{RUN_ID}" in b.find("#last-failures").text)
            # Read in one script run: htmx replaces the panel every 5 s.
            links, items, panel = b.driver.execute_script(
                "const lis = [...document.querySelectorAll('#last-failures li')];"
                "return [lis.map(li => li.querySelector('a')).filter(a => a).map(a => [a.textContent, a.pathname]),"
                "        lis.map(li => li.textContent), document.querySelector('main').textContent]")
            service_page = f"/console/service/{WEB}/"
            assert links[:4] == [[WEB, service_page], [WEB, service_page], [WEB, service_page],
                                 [FAILS, f"/console/container/{failed.uuid}/"]], links
            assert f"deployment {ended[1].pk} rolled back" in items[0] and f"rolled-{RUN_ID}" in items[0], items
            assert f"deployment {ended[0].pk} failed" in items[1] and f"failed-{RUN_ID}" in items[1], items
            assert "on local" in items[1] and "version 1 → 2" in items[1], items
            assert BROKEN in items[2] and "scale order failed" in items[2], items
            assert f"hidden-{RUN_ID}" not in panel and hidden.name not in panel
            b.shot("dashboard-failures")
            b.wait.until(lambda d: d.find_element(By.LINK_TEXT, FAILS).click() or True)  # again if swapped meanwhile
            b.wait.until(lambda d: b.find("#platform-state").text == "failed")
        finally:
            Deployment.objects.filter(reason__contains=RUN_ID).delete()
            Service.objects.filter(name=f"bobs-{RUN_ID}").delete()
            compute = Compute.objects.filter(name=BROKEN).first()
            if compute:
                compute.orders.all().delete()
                compute.desired.all().delete()
                compute.delete()


def test_many_instances_show_each_result_as_its_host_answers(world, browser, django_db_blocker, host_active,
                                                             tmp_path_factory, docker_client):
    """Six instances spread over three active hosts: the world's, a second real satellite frozen by SIGSTOP
    (it accepts connections and answers none) and one where nothing listens. While the frozen host's creates
    are still pending, the progress page (still loading: the same document, no reload) already shows the
    other hosts' results, the created and the failed naming their host, with the count so far; after
    SIGCONT the frozen host's two arrive in the same page, then the totals."""
    from django.utils import timezone

    from boatload import services
    from boatload.models import Container, Host

    frozen_name, gone_name, made = f"zz-frozen-{RUN_ID}", f"zz-gone-{RUN_ID}", f"two{RUN_ID}"
    frozen = SatelliteProcess(tmp_path_factory.mktemp("frozen"), name=frozen_name).start()
    with django_db_blocker.unblock():
        hosts = [Host.objects.create(name=frozen_name, satellite_url=frozen.url, key_id=frozen.key_id,
                                     secret=frozen.secret, state=Host.State.ACTIVE, last_seen=timezone.now()),
                 Host.objects.create(name=gone_name, satellite_url=f"http://127.0.0.1:{free_port()}", key_id="gone",
                                     secret="gone-secret", state=Host.State.ACTIVE, last_seen=timezone.now())]
        # Placement takes the least loaded host first (ties by name): give the two as many rows as the real
        # host holds, so six instances go two to each.
        load = Container.objects.filter(host=world["host"], state__in=Container.DEPLOYED).count()
        Container.objects.bulk_create(Container(owner=world["users"]["ops"], host=host, image_name=IMAGE_NAME,
                                                name=f"filler-{host.name}-{i}", state=Container.State.RUNNING)
                                      for host in hosts for i in range(load))
        rows = Container.objects.filter(name__startswith=f"{made}-")
        try:
            b = browser(page_load="none")  # commands do not wait for the page to end loading
            b.login("alice")
            b.get("/console/containers/new")
            b.wait.until(lambda d: d.find_elements(By.ID, "f-image_name"))
            b.find("#f-image_name").send_keys(IMAGE_NAME)
            b.find("#f-command").send_keys("sleep 3600")
            b.find("#f-name").send_keys(made)
            b.find("#f-instances").send_keys("6")
            frozen.freeze()
            b.find("#create").click()

            def shown():
                return [(li.get_attribute("class"), li.text) for li in b.all("#progress li")]
            b.wait.until(lambda d: len(shown()) == 4)
            document = b.driver.execute_script("return document.body.dataset.seen = String(Math.random())")
            assert b.driver.execute_script("return document.readyState") == "loading"  # the page is still coming
            assert b.all("#progress-done") == []
            assert sorted(rows.filter(state="pending").values_list("host__name", flat=True)) == [frozen_name] * 2
            ok = sorted(text for kind, text in shown() if kind == "ok")
            failed = sorted(text for kind, text in shown() if kind == "failed")
            assert len(ok) == 2 and all(world["host"].name in text and "running" in text for text in ok), shown()
            assert len(failed) == 2 and all(gone_name in text and "failed:" in text for text in failed), shown()
            assert [text.split(":")[0] for _, text in shown()] == ["1/6", "2/6", "3/6", "4/6"]
            assert frozen_name not in b.find("#progress").text
            b.shot("create-progress-partial")

            frozen.freeze(False)
            done = b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#progress-done"))[0]
            assert done.text == "4 of 6 created, 2 failed."
            later = [text for _, text in shown()[4:]]
            assert len(later) == 2 and all(frozen_name in text and "running" in text for text in later), shown()
            assert b.driver.execute_script("return document.body.dataset.seen") == document  # the same page
            assert sorted(rows.values_list("host__name", "state")) == sorted(
                [(world["host"].name, "running")] * 2 + [(frozen_name, "running")] * 2 + [(gone_name, "failed")] * 2)
            b.shot("create-progress-failure")
        finally:
            frozen.freeze(False)
            for row in rows.filter(state="running"):
                services.container_delete(row=row)
            Container.objects.filter(host__in=hosts).delete()
            Host.objects.filter(pk__in=[host.pk for host in hosts]).delete()
            own = "=".join(next(iter(frozen.own_labels().items())))
            frozen.stop()
            for container in docker_client.containers.list(all=True, filters={"label": own}):
                container.remove(force=True)


def test_a_many_instance_create_goes_on_when_its_page_is_closed(world, django_db_blocker, tmp_path_factory,
                                                                docker_client):
    """The browser leaves the progress page while a frozen host's creates are still out: the creates still
    record every outcome (no row left pending for the reconciler to guess at) and complete the request's
    audit entry, since the batch does not run inside the page's response."""
    from django.utils import timezone

    from boatload import services
    from boatload.models import Container, Host
    from observe.models import AuditEntry
    from tests.conftest import wait_until

    name, made = f"zz-left-{RUN_ID}", f"left{RUN_ID}"
    frozen = SatelliteProcess(tmp_path_factory.mktemp("left"), name=name).start()
    with django_db_blocker.unblock():
        host = Host.objects.create(name=name, satellite_url=frozen.url, key_id=frozen.key_id, secret=frozen.secret,
                                   state=Host.State.ACTIVE, last_seen=timezone.now())
        rows = Container.objects.filter(name__startswith=f"{made}-")
        try:
            http = requests.Session()
            login = world["server"].url + "/console/login/?next=/console/"
            http.get(login, timeout=30)
            answer = http.post(login, timeout=30, headers={"Referer": login}, data={
                "username": "alice", "password": PASSWORDS["alice"],
                "csrfmiddlewaretoken": http.cookies["csrftoken"]})
            assert answer.ok and urlsplit(answer.url).path == "/console/", answer.url
            frozen.freeze()
            form = world["server"].url + "/console/containers/new"
            page = http.post(form, stream=True, timeout=60, headers={"Referer": form}, data={
                "image_name": IMAGE_NAME, "command": "sleep 3600", "name": made, "instances": "4", "host": name,
                "csrfmiddlewaretoken": http.cookies["csrftoken"]})
            assert page.status_code == 200
            assert "Creating 4 containers" in next(page.iter_content(4096)).decode()
            page.close()  # the browser goes away while all four are still out
            assert sorted(rows.values_list("state", flat=True)) == ["pending"] * 4
            frozen.freeze(False)
            wait_until(lambda: not rows.filter(state="pending").exists(), timeout=60, message="no row pending")
            assert sorted(rows.values_list("state", flat=True)) == ["running"] * 4
            uuid = str(rows.first().uuid)
            entry = wait_until(lambda: AuditEntry.objects.filter(action="container.create",
                                                                 detail__containers__contains=[uuid],
                                                                 detail__has_key="failed").first(),
                               timeout=30, message="the create's audit entry completed")
            assert (entry.result, entry.detail["failed"]) == ("ok", 0)
        finally:
            frozen.freeze(False)
            for row in rows.filter(state="running"):
                services.container_delete(row=row)
            Container.objects.filter(host=host).delete()
            host.delete()
            own = "=".join(next(iter(frozen.own_labels().items())))
            frozen.stop()
            for container in docker_client.containers.list(all=True, filters={"label": own}):
                container.remove(force=True)


@pytest.mark.django_db
def test_landing_and_admin_branding(world):
    answer = requests.get(world["server"].url + "/", allow_redirects=False, timeout=10)
    assert (answer.status_code, answer.headers["Location"]) == (302, "/console/")
    answer = requests.get(world["server"].url + "/console/", allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/console/login/")
    login = requests.get(world["server"].url + "/admin/login/", timeout=10).text
    assert "BoatLoad" in login and "Django administration" not in login
    for asset in ("console/vendor/htmx-2.0.11.min.js", "console/vendor/uPlot-1.6.32.iife.min.js",
                  "console/console.css"):
        assert requests.get(f"{world['server'].url}/static/{asset}", timeout=10).status_code == 200


def test_no_page_loads_anything_from_elsewhere():
    """No CDN: every src/href in the console's templates is one of ours (a path or a template tag)."""
    for template in (ROOT / "console" / "templates").rglob("*.html"):
        for url in re.findall(r'(?:src|href)="([^"]+)"', template.read_text()):
            assert not re.match(r"(https?:)?//", url), (template.name, url)

