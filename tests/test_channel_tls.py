"""The channel is private: satellites serve HTTPS with their own certificate, which the API pins at
enrolment; a satellite sends its join token only to the API its join command names."""
import json
import shutil
from urllib.parse import urlsplit

import pytest
import requests
from django.test import override_settings

from boatload import services
from boatload.models import Host, JoinToken
from boatload.satellite_client import SatelliteClient
from common import sealing, tls
from common.errors import RemoteError
from tests.channel_servers import ImpostorAPI, TLSProxy, json_answer
from tests.conftest import SatelliteProcess, wait_until


def enrolled_satellite(api_url, state_dir, name, *, tls_on=True, env=None):
    _, token = JoinToken.issue()
    satellite = SatelliteProcess(state_dir, name=name, keys=False, tls=tls_on,
                                 env={"BOATLOAD_API_URL": api_url, "SATELLITE_JOIN_TOKEN": token, **(env or {})})
    return satellite.start()


@pytest.mark.django_db(transaction=True)
def test_a_satellite_serves_https_with_its_own_certificate_and_the_api_pins_it(live_server, tmp_path):
    satellite = enrolled_satellite(live_server.url, tmp_path / "real", "pinned-host")
    impostor = None
    try:
        host = Host.objects.get(name="pinned-host")
        assert host.satellite_url == satellite.url and satellite.url.startswith("https://")
        assert host.tls_certificate == satellite.certificate
        assert host.transport == "https-pinned"
        assert SatelliteClient(host).info()["satellite"]["name"] == "pinned-host"
        with pytest.raises(requests.ConnectionError):  # nothing answers in clear
            requests.get(satellite.url.replace("https://", "http://") + "/healthz", timeout=5)

        # A thief with the host's whole credentials file, but not its TLS key, takes over its address.
        satellite.stop()
        impostor = SatelliteProcess(tmp_path / "impostor", name="pinned-host", tls=True, keys=False)
        impostor.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(satellite.state_dir / "credentials.json", impostor.state_dir / "credentials.json")
        impostor.port, impostor.url = satellite.port, satellite.url
        impostor.env.update(SATELLITE_PORT=str(satellite.port), SATELLITE_URL=satellite.url)
        impostor.start()
        assert impostor.certificate != host.tls_certificate
        with pytest.raises(RemoteError) as refused:
            SatelliteClient(host).info()
        assert refused.value.code == "satellite_unavailable"
    finally:
        satellite.stop()
        if impostor:
            impostor.stop()


@pytest.mark.django_db(transaction=True)
def test_the_host_list_names_the_transport(live_server, tmp_path, api):
    satellite = enrolled_satellite(live_server.url, tmp_path / "plain", "plain-host", tls_on=False)
    try:
        rows = {r["name"]: r for r in api("owner").get("/v1/host/").json()["results"]}
        assert rows["plain-host"]["transport"] == "http-loopback"
        assert "plain HTTP" in satellite.read_log()
    finally:
        satellite.stop()


def test_plain_http_off_loopback_is_refused_at_start(tmp_path):
    satellite = SatelliteProcess(tmp_path, name="wide-open", env={"SATELLITE_URL": "http://10.1.2.3:7051",
                                                                  "SATELLITE_BIND": "0.0.0.0"})
    satellite.start(wait=False)
    assert satellite.process.wait(30) != 0
    assert "only allowed on a loopback" in satellite.read_log()


@pytest.mark.parametrize("fields, field", [
    ({"satellite_url": "http://10.9.8.7:7051"}, "satellite_url"),
    ({"satellite_url": "https://127.0.0.1:7051"}, "certificate"),
    ({"satellite_url": "https://127.0.0.1:7051", "certificate": "-----BEGIN CERTIFICATE-----\nnope\n"}, "certificate"),
    ({"seal_public_key": "c2hvcnQ="}, "seal_public_key"),
])
def test_enrolment_refuses_an_unsafe_channel_and_makes_nothing(client, db, fields, field):
    row, token = JoinToken.issue()
    body = {"token": token, "name": "bad-host", "satellite_url": "http://127.0.0.1:7051",
            "seal_public_key": sealing.public_text(sealing.new_private_key()), **fields}
    answer = client.post("/v1/host/enrol/", body, content_type="application/json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["detail"]["field"] == field
    assert not Host.objects.exists()
    row.refresh_from_db()
    assert row.used is None


@pytest.mark.django_db(transaction=True)
def test_a_satellite_never_sends_its_join_token_to_an_impostor_api(tmp_path):
    impostor = ImpostorAPI(lambda handler, body: (201, {}, json_answer({})), certificate_dir=tmp_path / "imp")
    other = tls.ensure_self_signed(tmp_path / "other" / "c.pem", tmp_path / "other" / "k.pem", ["127.0.0.1"])
    try:
        _, token = JoinToken.issue()
        satellite = SatelliteProcess(tmp_path / "state", name="careful", keys=False, env={
            "BOATLOAD_API_URL": impostor.url, "SATELLITE_JOIN_TOKEN": token,
            "BOATLOAD_API_FINGERPRINT": tls.fingerprint(other)})
        satellite.start(wait=False)
        assert satellite.process.wait(30) != 0
        assert "the join token was not sent" in satellite.read_log()
        assert impostor.received == []
        assert not (tmp_path / "state" / "credentials.json").exists()
        # Without any pin, an https API must chain to a CA this host trusts: the self-signed impostor does not.
        satellite = SatelliteProcess(tmp_path / "state2", name="careful", keys=False, env={
            "BOATLOAD_API_URL": impostor.url, "SATELLITE_JOIN_TOKEN": token})
        satellite.start(wait=False)
        assert satellite.process.wait(30) != 0
        assert impostor.received == []
        # Plain HTTP to an API off loopback is refused before anything is sent.
        satellite = SatelliteProcess(tmp_path / "state3", name="careful", keys=False, env={
            "BOATLOAD_API_URL": "http://10.9.8.7:8000", "SATELLITE_JOIN_TOKEN": token})
        satellite.start(wait=False)
        assert satellite.process.wait(30) != 0
        assert "over plain HTTP" in satellite.read_log()
    finally:
        impostor.close()


@pytest.mark.django_db(transaction=True)
def test_a_satellite_enrols_through_a_tls_proxy_pinned_by_the_join_commands_fingerprint(live_server, tmp_path):
    upstream = urlsplit(live_server.url)
    proxy = TLSProxy((upstream.hostname, upstream.port), tmp_path / "proxy")
    fingerprint = tls.fingerprint(proxy.certificate)
    try:
        with override_settings(PUBLIC_URL=proxy.url, PUBLIC_FINGERPRINT=fingerprint):
            _, token = JoinToken.issue()
            command = services.satellite_join_command_venv(token)
        assert f"BOATLOAD_API_FINGERPRINT={fingerprint}" in command and f"BOATLOAD_API_URL={proxy.url}" in command
        satellite = SatelliteProcess(tmp_path / "state", name="proxied", keys=False, tls=True, env={
            "BOATLOAD_API_URL": proxy.url, "BOATLOAD_API_FINGERPRINT": fingerprint, "SATELLITE_JOIN_TOKEN": token})
        satellite.start()
        try:
            host = Host.objects.get(name="proxied")
            stored = json.loads((tmp_path / "state" / "credentials.json").read_text())
            assert stored["api_fingerprint"] == fingerprint
            first_seen = host.last_seen
            wait_until(lambda: Host.objects.get(pk=host.pk).last_seen > first_seen, message="a heartbeat via the proxy")
        finally:
            satellite.stop()
    finally:
        proxy.close()


@pytest.mark.django_db(transaction=True)
def test_a_host_enrolled_before_tls_is_pinned_by_its_first_heartbeat_and_never_re_pinned(live_server, tmp_path):
    satellite = SatelliteProcess(tmp_path / "old", name="old-host", tls=True)
    stored = {"host": "old-host", "api_url": live_server.url, "key_id": satellite.key_id,
              "keys": {satellite.key_id: satellite.secret}}
    (satellite.state_dir / "credentials.json").write_text(json.dumps(stored))
    host = Host.objects.create(name="old-host", satellite_url=satellite.url.replace("https", "http"),
                               key_id=satellite.key_id, secret=satellite.secret)
    satellite.start()
    impostor = None
    try:
        upgraded = wait_until(lambda: (lambda h: h if h.tls_certificate else None)(Host.objects.get(pk=host.pk)),
                              message="the first heartbeat to pin the certificate")
        assert upgraded.satellite_url == satellite.url and upgraded.transport == "https-pinned"
        assert upgraded.tls_certificate == satellite.certificate and upgraded.seal_public_key
        assert SatelliteClient(upgraded).info()["satellite"]["name"] == "old-host"
        # A holder of the host's keys with another certificate heartbeats too: the pin stays.
        impostor = SatelliteProcess(tmp_path / "impostor", name="old-host", tls=True)
        (impostor.state_dir / "credentials.json").write_text(json.dumps(stored))
        impostor.start()
        beat = Host.objects.get(pk=host.pk).last_seen
        wait_until(lambda: Host.objects.get(pk=host.pk).last_seen > beat, message="more heartbeats")
        satellite.stop()
        beat = Host.objects.get(pk=host.pk).last_seen
        wait_until(lambda: Host.objects.get(pk=host.pk).last_seen > beat, message="the impostor's heartbeat")
        after = Host.objects.get(pk=host.pk)
        assert (after.satellite_url, after.tls_certificate) == (upgraded.satellite_url, upgraded.tls_certificate)
    finally:
        satellite.stop()
        if impostor:
            impostor.stop()
