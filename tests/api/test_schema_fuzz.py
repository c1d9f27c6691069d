"""Schemathesis over /v1/schema/, as staff and as a plain user, against the real API process.

The API runs under gunicorn (as in production) on the test Postgres database; a real
satellite on the real Docker engine is enrolled as a Host, and each user owns a running
container, so container operations reach a real engine. Schemathesis' own CLI (`st run`)
drives every operation of the served schema through its coverage phase (boundary and
wrong-type values, non-object bodies, missing fields) and its fuzzing phase, with a fixed seed
and deterministic generation. The examples phase has nothing to run (the schema has no
examples); the stateful phase is left out to fit CI's time. One worker: with several,
schemathesis 4.32.5 failed in its own coverage generator (SystemError from Python's compiler
under threads), reported as errors of the run.

A run fails on:
- any 5xx that is not a documented upstream failure (tests/api/schemathesis_checks.py);
- a status the operation's schema does not list (status_code_conformance);
- a body, content type or header that breaks the schema (response_schema_conformance,
  content_type_conformance, response_headers_conformance).
Schemathesis' other checks (negative_data_rejection, ignored_auth, use_after_free, …) judge
API design rather than robustness and are left to their own tests.

No operation is excluded. `follow=true` on stdout streams until the container ends: the
containers here run `sleep`, so a follow stream would only end at the request timeout; the
timeout below (`--request-timeout`) ends such a call, which schemathesis then reports.
"""
import os
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import IMAGE_NAME, IMAGE_TAG, ROOT, jwt_for
from tests.live import live_world

MAX_EXAMPLES = int(os.environ.get("BOATLOAD_FUZZ_EXAMPLES", "3"))
SEED = 20261201
CHECKS = "status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"


@pytest.fixture(scope="module")
def fuzz_world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Committed rows the API process can see: staff and a plain user, a real host, a container each."""
    from django.contrib.auth import get_user_model

    from boatload import services
    from boatload.api.serializers import ContainerCreateSerializer

    def rows(host, satellite):
        users = {
            "staff": get_user_model().objects.create_user("fuzz-staff", password="fuzz-pass-1", is_staff=True,
                                                          is_superuser=True),
            "user": get_user_model().objects.create_user("fuzz-user", password="fuzz-pass-2"),
        }
        spec = ContainerCreateSerializer(data={"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG,
                                               # stops at once on SIGTERM: a fuzzed
                                               # stop?timeout=599 must not wait ten minutes
                                               "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]})
        spec.is_valid(raise_exception=True)
        for user in users.values():
            services.container_create(owner=user, spec=dict(spec.validated_data))
        return {"users": users}

    with live_world(django_db_blocker, tmp_path_factory.mktemp("fuzz"), host_name="fuzz-host", rows=rows) as world:
        yield world


class SchemathesisRun:
    """`st run` over the served schema as one user, in its own process and folder."""

    def __init__(self, world, role):
        token = jwt_for(world["users"][role])
        self.folder = world["folder"] / f"st-{role}"
        self.folder.mkdir()
        self.output_path = self.folder / "output.txt"
        self.started = time.monotonic()
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "schemathesis.cli", "run", f"{world['server'].url}/v1/schema/",
                 "--header", f"Authorization: Bearer {token}",
                 "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
                 "--generation-deterministic", "--workers", "1", "--phases", "coverage,fuzzing",
                 "--request-timeout", "15", "--suppress-health-check", "all", "--no-color",
                 "--report", "junit", "--report-junit-path", str(self.folder / "junit.xml")],
                # In the run's own folder: schemathesis keeps a cache (.schemathesis/) in its working
                # directory, and a cache carried over from an earlier run would change what this one tries.
                cwd=self.folder, env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_checks",
                                      "PYTHONPATH": str(ROOT)},
                stdout=output, stderr=subprocess.STDOUT)

    def wait(self):
        """(exit code, console output, seconds)."""
        code = self.process.wait(timeout=900)
        return code, self.output_path.read_text(errors="replace"), time.monotonic() - self.started


@pytest.fixture(scope="module")
def schemathesis_runs(fuzz_world):
    """Both users' runs, side by side (each is one process with one worker: half the wall time)."""
    runs = {role: SchemathesisRun(fuzz_world, role) for role in fuzz_world["users"]}
    yield runs
    for run in runs.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def server_tracebacks(log):
    """The last line of each distinct traceback in the API's log."""
    lines = log.splitlines()
    ends = {lines[i + 1].strip() for i, line in enumerate(lines[:-1])
            if re.match(r"^\S.*(Error|Exception)\b", lines[i + 1]) and line.startswith("  ")}
    return sorted(ends)




@pytest.mark.slow
@pytest.mark.timeout(1200)  # both runs (started together by schemathesis_runs) may take up to 900 s each
@pytest.mark.django_db  # sets up the test database; the rows the API sees are committed by fuzz_world
@pytest.mark.parametrize("role", ["staff", "user"])
def test_schemathesis_finds_no_failure(fuzz_world, schemathesis_runs, role):
    code, output, seconds = schemathesis_runs[role].wait()
    log = fuzz_world["server"].log_path.read_text(errors="replace")
    print(output)
    print(f"fuzz run as {role}: {seconds:.0f} s")
    assert code == 0, (f"schemathesis as {role} failed ({seconds:.0f} s):\n{output[-20000:]}\n"
                       f"server tracebacks:\n" + "\n".join(server_tracebacks(log)))


def _served_schema(api):
    response = api("staff").get("/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


ERROR_REF = "#/components/schemas/Error"


def test_every_operation_documents_its_error_statuses_with_the_error_shape(api):
    paths = _served_schema(api)["paths"]
    expected = {
        ("post", "/v1/container/"): {"400", "401", "403", "406", "409", "413", "415", "502", "503", "504"},
        ("get", "/v1/container/{uuid}/stdout/"): {"400", "401", "404", "409", "502", "503", "504"},
        ("get", "/v1/container/{uuid}/"): {"401", "404"},
        ("post", "/v1/container/raw/"): {"400", "401", "403", "413", "415", "502"},
        ("post", "/v1/host/{name}/drain/"): {"401", "403", "404"},
        ("post", "/v1/auth/token/"): {"400", "401", "429"},
        ("post", "/service/{name}/scale/"): {"400", "401", "404", "502", "503", "504"},
        ("get", "/compute/"): {"401"},
    }
    for (method, path), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert statuses <= set(responses), f"{method.upper()} {path} lacks {sorted(statuses - set(responses))}"
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status_code, response in operation["responses"].items():
                if int(status_code) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == ERROR_REF, f"{method.upper()} {path} {status_code} is not the error shape"
    # and nothing an operation can not answer
    assert "403" not in paths["/v1/container/{uuid}/"]["get"]["responses"]  # own rows only: others' are 404
    assert "404" not in paths["/v1/container/"]["get"]["responses"]
    assert "502" not in paths["/v1/template/"]["post"]["responses"]  # templates never reach a satellite
    assert "400" not in paths["/v1/host/{name}/"]["get"]["responses"]  # the name is a lookup: 404
