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

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.api.test_schema_fuzz import ApiServer
from tests.conftest import IMAGE_NAME, IMAGE_TAG, ROOT, RUN_ID, RUN_LABEL, SatelliteProcess, free_port, jwt_for
from tests.console.quiet_network import QuietNetwork

SCREENSHOTS = Path(os.environ.get("BOATLOAD_SCREENSHOTS", ROOT / "var" / "screenshots"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORDS = {"ops": "ops-pass-1", "alice": "alice-pass-1", "bob": "bob-pass-1"}
# Container and service names are the engine's, shared by every test run on this machine: made unique per run.
KEPT, MADE, MANY = f"alice-kept-{RUN_ID}", f"console-made-{RUN_ID}", f"many{RUN_ID}"
WEB, LIVE = f"web{RUN_ID}", f"live{RUN_ID}"
SCRIPT = ("echo hello-from-console; mkdir -p /out; echo payload-123 > /out/result.txt; i=0; "
          "while [ $i -lt 300 ]; do echo tick $i; i=$((i+1)); sleep 1; done")


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Committed rows the API process sees: staff `ops`, users `alice` and `bob`, a real host and compute,
    a container of alice's, and a service of hers."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from boatload import services
    from boatload.models import Host
    from genisys.models import Compute, Service

    folder = tmp_path_factory.mktemp("console")
    static = folder / "static"
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True,
                   env={**os.environ, "BOATLOAD_STATIC_ROOT": str(static)})
    satellite = SatelliteProcess(folder / "satellite", name="console-host").start()
    server = None
    # The satellite here does not heartbeat to this API: its host must not be taken for down meanwhile
    # (in this process, and in the API's through its environment).
    down_after, settings.HOST_DOWN_AFTER = settings.HOST_DOWN_AFTER, 3600
    with django_db_blocker.unblock():
        try:
            model = get_user_model()
            users = {"ops": model.objects.create_user("ops", password=PASSWORDS["ops"], is_staff=True),
                     "alice": model.objects.create_user("alice", password=PASSWORDS["alice"]),
                     "bob": model.objects.create_user("bob", password=PASSWORDS["bob"])}
            host = Host.objects.create(name=satellite.name, satellite_url=satellite.url, key_id=satellite.key_id,
                                       secret=satellite.secret, state=Host.State.ACTIVE, last_seen=timezone.now(),
                                       address_internal="127.0.0.1", labels={"group": "g1"}, cpus=2)
            Compute.objects.create(name="local", connector=satellite.url)
            Service.objects.create(name=WEB, image=f"{IMAGE_NAME}:{IMAGE_TAG}", command="sleep 3600",
                                   owner=users["alice"])
            _, [(kept, error)] = services.container_create_request(
                user=users["alice"], fields={"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG,
                                             "name": KEPT, "command": ["sleep", "3600"]})
            assert error is None
            server = ApiServer(folder / "api.log", settings.DATABASES["default"]["NAME"])
            server.env.update(BOATLOAD_STATIC_ROOT=str(static), BOATLOAD_HOST_DOWN_AFTER="3600")
            server.start()
            yield {"server": server, "users": users, "host": host, "kept": kept, "satellite": satellite}
        finally:
            if server:
                server.stop()
            satellite.stop()
            settings.HOST_DOWN_AFTER = down_after
            call_command("flush", interactive=False, verbosity=0)  # later tests expect an empty database


class Browser:
    """One headless Chromium with its own profile; `shot(name)` writes a screenshot."""

    def __init__(self, base, network, width=1280, height=800):
        self.base = base
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--window-size={width},{height}"):
            options.add_argument(flag)
        # chromedriver (and the Chromium it starts, with a profile of its own) live in `network`'s namespace.
        self.driver = webdriver.Remote(command_executor=network.driver_url, options=options)
        self.driver.set_page_load_timeout(60)
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

    def shot(self, name, width=None):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if width:
            self.driver.set_window_size(width, 844)
        # The whole page, not just the window: resize to the document's height for the shot.
        height = self.driver.execute_script("return Math.max(document.documentElement.scrollHeight, "
                                            "document.body.scrollHeight) + window.outerHeight - window.innerHeight")
        size = self.driver.get_window_size()
        self.driver.set_window_size(size["width"], min(max(height, 600), 4000))
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        self.driver.set_window_size(size["width"], size["height"])

    def login(self, user):
        self.get("/")
        self.wait.until(lambda d: "/console/login/" in d.current_url)
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

    def open_browser(**size):
        opened.append(Browser(world["server"].url, network, **size))
        return opened[-1]

    yield open_browser
    for b in opened:
        b.close()


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
    b.driver.set_window_size(1280, 800)

    # Stop by keyboard, then delete (confirmed).
    b.find("#do-stop").send_keys(Keys.ENTER)
    b.wait.until(lambda d: b.find("#platform-state").text == "exited")
    row.refresh_from_db()
    assert row.state == "exited"
    b.find("#do-delete").click()
    b.wait.until(lambda d: d.switch_to.alert).accept()
    b.wait.until(lambda d: d.current_url.endswith("/console/containers/") and b.all(".messages")
                 and d.execute_script("return document.readyState") == "complete")
    assert uuid not in [tr.get_attribute("data-id") for tr in b.all("#containers tr[data-id]")]
    assert_every_control_labelled(b)
    b.shot("containers")
    b.shot("containers-390", width=390)
    b.driver.set_window_size(1280, 800)
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
    b.get("/console/containers/?q=many")
    b.find("#containers thead")  # the table is there
    for box in b.all("#containers tbody input[type=checkbox]"):
        box.click()
    b.find("select[name=action]").send_keys("delete")
    b.find(".bar button[type=submit]").click()
    b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#confirm"))[0].click()
    b.wait.until(lambda d: "delete: 3 of 3" in b.find(".messages").text)
    assert sorted(made.values_list("state", flat=True)) == ["deleted"] * 3


@pytest.mark.django_db
def test_scale_a_service_to_three(world, browser):
    b = browser()
    b.login("alice")
    b.get("/console/services/")
    b.driver.find_element(By.LINK_TEXT, WEB).click()
    b.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#f-number"))
    assert_every_control_labelled(b)
    b.find("#f-number").send_keys("3")
    b.find("#scale").click()
    b.wait.until(lambda d: f"Scaled {WEB} to 3" in b.find(".messages").text)
    assert b.find("#running-total").text == "3"
    assert "alice" in b.find("#orders tbody tr td:nth-child(2)").text  # the order's requester, newest first
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


@pytest.mark.django_db
def test_a_user_sees_only_their_own_and_no_staff_control(world, browser):
    from boatload.models import Host

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
    assert b.all("[data-staff]") == [] and b.all("#jointoken") == []
    assert not b.all("a[href='/admin/']")
    b.shot("hosts-user")

    # Forged POSTs, with a valid session and CSRF token: staff actions are 403, another's container 404.
    http = b.session()
    b.get("/console/hosts/")
    token = b.driver.get_cookie("csrftoken")["value"]
    headers = {"X-CSRFToken": token, "Referer": world["server"].url + "/console/hosts/"}
    for path in (f"/console/host/{world['host'].name}/drain", f"/console/host/{world['host'].name}/unregister",
                 "/console/hosts/jointoken"):
        answer = http.post(world["server"].url + path, data={"confirm": "yes"}, headers=headers, timeout=30)
        assert answer.status_code == 403, path
        assert answer.json()["error"]["code"] == "permission_denied"
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
    b.shot("jointoken")
    b.get("/console/hosts/")
    assert_every_control_labelled(b)
    b.shot("hosts-staff")
    row = next(tr for tr in b.all("#hosts tbody tr") if world["host"].name in tr.text)
    row.find_element(By.XPATH, ".//button[text()='Drain']").click()
    b.wait.until(lambda d: "drain: " in b.find(".messages").text)
    world["host"].refresh_from_db()
    assert world["host"].state == "draining"
    assert Container.objects.filter(owner__username="alice", name=KEPT).exists()


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

