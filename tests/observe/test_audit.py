"""The audit log: exactly one entry per change (failed ones too), no secret of a request in any entry,
GET /v1/audit/ scoped, filtered, cursor-paged and as CSV. Real satellites and engines behind the API."""
import base64
import json

from observe.models import AuditEntry
from tests.conftest import IMAGE_NAME, IMAGE_TAG

SECRET_ENV = "env-secret-value-9f3a"
SECRET_SCRIPT = "echo script-secret-1c2d; sleep 300"
PASSWORD = "owner-pass-1"


def entries():
    return list(AuditEntry.objects.order_by("id"))


def assert_no_secret(*secrets):
    """No secret in any column of any entry."""
    for entry in AuditEntry.objects.all():
        text = json.dumps({f.name: str(getattr(entry, f.name)) for f in AuditEntry._meta.fields})
        for secret in secrets:
            assert secret not in text, f"{secret!r} in entry {entry.action}: {text}"


def test_each_container_change_has_exactly_one_entry_and_no_secret(api, fleet_hosts):
    owner = api("owner")
    script = base64.b64encode(SECRET_SCRIPT.encode()).decode()
    made = owner.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "script": script,
                                         "env": {"API_KEY": SECRET_ENV}},
                      format="json")
    assert made.status_code == 201, made.json()
    container = made.json()["id"]
    [create] = entries()
    assert (create.action, create.result, create.status_code, create.target) == ("container.create", "ok", 201,
                                                                                  container)
    assert (create.actor_name, create.address, create.method) == ("owner", "127.0.0.1", "POST")
    assert create.request["body"]["env"] == {"API_KEY": "***"} and create.request["body"]["script"] == "***"

    assert owner.post(f"/v1/container/{container}/stop?timeout=0").status_code == 200
    assert owner.delete(f"/v1/container/{container}/").status_code == 204
    assert [(e.action, e.result, e.target) for e in entries()[1:]] == [
        ("container.stop", "ok", container), ("container.delete", "ok", container)]
    assert_no_secret(SECRET_ENV, SECRET_SCRIPT, script)


def test_failed_and_refused_changes_have_one_failed_entry_each(api, fleet, fleet_hosts):
    owner = api("owner")
    bad = owner.post("/v1/container/", {"image_name": IMAGE_NAME, "ports": [{"port": 0}],
                                        "env": {"TOKEN": SECRET_ENV}}, format="json")
    assert bad.status_code == 400
    refused = owner.post("/v1/template/", {"name": "t1", "body": {"Image": "x"}}, format="json")
    assert refused.status_code == 403
    fleet["host-c"].satellite.stop()
    down = owner.post("/v1/container/", {"image_name": IMAGE_NAME, "host": "host-c"}, format="json")
    assert down.status_code == 502
    assert [(e.action, e.result, e.status_code) for e in entries()] == [
        ("container.create", "failed", 400), ("template.create", "failed", 403), ("container.create", "failed", 502)]
    first, _, last = entries()
    assert first.error_code == "invalid" and "ports" in first.message
    assert last.target == down.json()["error"]["detail"]["container"]
    assert_no_secret(SECRET_ENV)


def test_staff_changes_are_recorded_in_their_transaction(api, fleet_hosts):
    staff = api("staff")
    assert staff.post("/v1/template/", {"name": "t2", "body": {"Image": "x"}}, format="json").status_code == 201
    token = staff.post("/v1/jointoken/", {"note": "rack"}, format="json").json()["token"]
    assert staff.post("/v1/host/host-a/drain").status_code == 200
    assert staff.delete("/v1/template/t2/").status_code == 204
    assert [(e.action, e.result, e.target, e.actor_name) for e in entries()] == [
        ("template.create", "ok", "t2", "staff"), ("jointoken.create", "ok", token[:12], "staff"),
        ("host.drain", "ok", "host-a", "staff"), ("template.delete", "ok", "t2", "staff")]
    assert_no_secret(token)


def test_logins_succeeded_and_failed_are_recorded_without_the_password(api, users):
    client = api()
    assert client.post("/v1/auth/token/", {"username": "owner", "password": PASSWORD}, format="json").status_code == 200
    assert client.post("/v1/auth/token/", {"username": "owner", "password": "wrong-9e8d"},
                       format="json").status_code == 401
    assert client.post("/v1/auth/session/login/", {"username": "owner", "password": PASSWORD}).status_code == 302
    assert [(e.action, e.result, e.actor_name) for e in entries()] == [
        ("auth.login", "ok", "owner"), ("auth.login", "failed", "owner"), ("auth.login", "ok", "owner")]
    assert entries()[0].status_code == 200 and entries()[1].status_code == 401
    assert_no_secret(PASSWORD, "wrong-9e8d")


def test_audit_list_is_scoped_filtered_paged_and_exported(api, users):
    for name in ("owner", "owner", "other"):
        api(name).post("/v1/template/", {"name": "nope", "body": {}}, format="json")  # 403 each: recorded
    own = api("owner").get("/v1/audit/").json()
    assert [e["actor"] for e in own["results"]] == ["owner", "owner"]
    assert len(api("staff").get("/v1/audit/").json()["results"]) == 3
    assert [e["actor"] for e in api("staff").get("/v1/audit/?actor=other").json()["results"]] == ["other"]
    page = api("staff").get("/v1/audit/?limit=2").json()
    assert len(page["results"]) == 2 and "cursor=" in page["next"]
    rest = api("staff").get(page["next"].replace("http://testserver", "")).json()
    assert len(rest["results"]) == 1 and rest["results"][0]["actor"] == "owner"
    exported = api("staff").get("/v1/audit/?format=csv&result=failed")
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv") and exported.streaming
    lines = b"".join(exported.streaming_content).decode().splitlines()
    assert lines[0].startswith("id,created,actor_name") and len(lines) == 4
    assert api("staff").get("/v1/audit/?result=nonsense").status_code == 400
    assert api().get("/v1/audit/").status_code == 401


def refuse_audit_writes():
    """Make every INSERT into the audit log fail, as a full disk or a lost connection would."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit refused'; "
                       "END $$ LANGUAGE plpgsql")
        cursor.execute(f"CREATE TRIGGER refuse_audit BEFORE INSERT ON {AuditEntry._meta.db_table} "
                       "FOR EACH ROW EXECUTE FUNCTION refuse_audit()")


def status_of(call):
    from django.db import DatabaseError

    try:
        return call().status_code
    except DatabaseError:  # the test client re-raises what the view raised
        return 500


def test_api_keys_and_deployment_actions_are_never_made_without_their_entry(api, users):
    """Their entry is written in the change's own transaction: when it can not be written, nothing changed."""
    from django.utils import timezone

    from boatload.logins.models import APIKey
    from genisys.models import Deployment, Service

    service = Service.objects.create(name="web", image=f"{IMAGE_NAME}:{IMAGE_TAG}")
    deployment = Deployment.objects.create(service=service, kind="definition", to_version=1, target_version=1,
                                           policy={}, progressed=timezone.now())
    key = api("owner").post("/v1/apikey/", {"name": "first"}, format="json").json()
    refuse_audit_writes()
    assert status_of(lambda: api("owner").post("/v1/apikey/", {"name": "ci"}, format="json")) == 500
    assert not APIKey.objects.filter(name="ci").exists()
    assert status_of(lambda: api("owner").post(f"/v1/apikey/{key['id']}/revoke")) == 500
    assert not APIKey.objects.get(name="first").revoked
    assert status_of(lambda: api("staff").post(f"/service/web/deployments/{deployment.pk}/pause")) == 500
    assert Deployment.objects.get(pk=deployment.pk).state == Deployment.State.RUNNING


def test_api_keys_and_deployment_actions_have_one_entry_each(api, users):
    from django.utils import timezone

    from genisys.models import Deployment, Service

    service = Service.objects.create(name="web", image=f"{IMAGE_NAME}:{IMAGE_TAG}")
    deployment = Deployment.objects.create(service=service, kind="definition", to_version=1, target_version=1,
                                           policy={}, progressed=timezone.now())
    key = api("owner").post("/v1/apikey/", {"name": "ci"}, format="json").json()
    assert api("owner").post(f"/v1/apikey/{key['id']}/revoke").status_code == 200
    assert api("staff").post(f"/service/web/deployments/{deployment.pk}/pause").status_code == 200
    assert api("staff").post(f"/service/web/deployments/{deployment.pk}/pause").status_code == 409
    assert [(e.action, e.result, e.target, e.status_code) for e in entries()] == [
        ("apikey.create", "ok", key["id"], 201), ("apikey.revoke", "ok", key["id"], 200),
        ("deployment.pause", "ok", f"web#{deployment.pk}", 200),
        ("deployment.pause", "failed", f"web#{deployment.pk}", 409)]
    assert_no_secret(key["key"])


def test_a_creates_outcome_and_status_are_one_write(api, fleet_hosts):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    owner = api("owner")
    with CaptureQueriesContext(connection) as queries:
        made = owner.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "host": "host-a",
                                             "command": ["sleep", "60"]}, format="json")
    assert made.status_code == 201, made.json()
    writes = [query["sql"].split()[0] for query in queries.captured_queries if "observe_auditentry" in query["sql"]]
    assert writes == ["INSERT", "UPDATE"], writes  # the entry with the rows, then its outcome and status at once
    [create] = entries()
    assert (create.result, create.status_code, create.detail) == ("ok", 201, {"containers": [made.json()["id"]],
                                                                               "failed": 0})


def test_a_console_create_that_fails_on_its_host_is_audited_as_failed(users, client):
    """The console's one-container create records its outcome as the API's does (it read only the first
    outcome, so the entry stayed "ok" whatever the host answered)."""
    from django.utils import timezone

    from boatload.models import Container, Host
    from tests.conftest import free_port

    Host.objects.create(name="gone-host", satellite_url=f"http://127.0.0.1:{free_port()}", key_id="gone",
                        secret="gone-secret", state=Host.State.ACTIVE, last_seen=timezone.now())
    client.force_login(users["owner"])
    answer = client.post("/console/containers/new", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG,
                                                     "host": "gone-host"})
    row = Container.objects.get()
    assert answer.status_code == 302 and row.state == Container.State.FAILED, (answer.status_code, row.state)
    [create] = [entry for entry in entries() if entry.action == "container.create"]
    assert (create.result, create.target) == ("failed", str(row.uuid)), (create.result, create.message)
    assert "gone-host" in create.message, create.message
