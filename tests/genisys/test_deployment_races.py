"""Concurrent changes of one service: versions and deployments stay one of each, and no caller gets a 500.

Each thread has its own Postgres connection (a real one: transaction=True), and all of them start at
once behind a barrier, as concurrent scale orders through several API processes do (the CI run of
tests/test_several_controllers.py met this race as a 500: two first versions numbered 1).
"""
import threading

import pytest
from django.db import connection

from genisys import deploy
from genisys.models import Compute, Deployment, Desired, Service, ServiceVersion

THREADS = 8


def at_once(work):
    """Run `work()` in THREADS threads started together; the exceptions they raised."""
    barrier, errors = threading.Barrier(THREADS), []

    def run():
        try:
            barrier.wait()
            work()
        except Exception as error:  # noqa: BLE001 - collected and asserted on below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


@pytest.fixture
def service(transactional_db):
    row = Service.objects.create(name="race", image="boatload-test/busybox:latest", command="sleep 600")
    compute = Compute.objects.create(name="race-compute", connector="http://127.0.0.1:9")
    Desired.objects.create(service=row, compute=compute, number=2)
    return row


def test_concurrent_scale_orders_make_one_version_and_one_active_deployment(service):
    errors = at_once(lambda: deploy.scale_deployment(service=Service.objects.get(pk=service.pk)))
    assert errors == []
    assert ServiceVersion.objects.filter(service=service).count() == 1
    assert Deployment.objects.filter(service=service, state__in=Deployment.ACTIVE).count() == 1


def test_concurrent_definition_changes_number_their_versions_in_turn(service):
    deploy.definition_changed(service=service)  # version 1

    def change():
        row = Service.objects.get(pk=service.pk)
        row.command = f"sleep {threading.get_ident() % 1000 + 1}"
        row.save()
        deploy.definition_changed(service=row)

    assert at_once(change) == []
    numbers = sorted(ServiceVersion.objects.filter(service=service).values_list("number", flat=True))
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 1
    assert Deployment.objects.filter(service=service, state__in=Deployment.ACTIVE).count() == 1
