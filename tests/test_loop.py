"""The one reconciler skeleton (boatload.loop) under both loops: steps claimed with a conditional
UPDATE, one failing row never stopping a pass, SIGTERM ending it between steps."""
import signal

import pytest

from boatload import loop
from boatload.loop import ReconcilerCommand
from boatload.management.commands.reconcile import Command as ContainerReconciler
from boatload.models import Host
from genisys import services
from genisys.management.commands.genisys import Command as GenisysReconciler
from genisys.models import Service


def test_both_reconcilers_are_the_one_skeleton():
    assert issubclass(ContainerReconciler, ReconcilerCommand) and issubclass(GenisysReconciler, ReconcilerCommand)


def test_one_failing_row_never_stops_a_pass():
    seen = []

    def step(row):
        seen.append(row)
        if row == 2:
            raise RuntimeError("a bug in one row")
        return True

    assert GenisysReconciler().each([1, 2, 3], step) == 2
    assert seen == [1, 2, 3]


def test_sigterm_ends_a_pass_between_steps():
    reconciler = ContainerReconciler()
    reconciler.stopping = False
    signal.signal(signal.SIGTERM, reconciler.on_sigterm)
    try:
        assert reconciler.each([1, 2, 3], lambda row: signal.raise_signal(signal.SIGTERM) or True) == 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.django_db
def test_a_service_claimed_by_another_reconciler_is_skipped_and_freed_after(users):
    service = Service.objects.create(name="claimed", image="boatload-test/busybox:latest", owner=users["owner"])
    assert services.service_claim(service)
    assert not services.service_claim(service)  # a second reconciler's claim fails at once: no lock to wait on
    assert services.service_reconcile(service=service) is None
    services.service_release(service)
    assert services.service_reconcile(service=service) == []
    assert Service.objects.get(pk=service.pk).claimed_until is None  # the step released its claim


@pytest.mark.django_db
def test_a_save_never_writes_a_claim_back_nor_frees_one(users):
    """A row loaded while claimed and saved after the release must not hold the service again (its deployment
    steps then waited out the old claim, up to two minutes); one saved during a claim must not free it."""
    service = Service.objects.create(name="saved", image="boatload-test/busybox:latest", owner=users["owner"])
    assert loop.claim(Service, service.pk)
    loaded_while_claimed = Service.objects.get(pk=service.pk)
    loop.release(Service, service.pk)
    loaded_while_claimed.image = "boatload-test/busybox:other"
    loaded_while_claimed.save()  # as a definition change saves it
    assert Service.objects.get(pk=service.pk).claimed_until is None
    assert Service.objects.get(pk=service.pk).image == "boatload-test/busybox:other"
    assert loop.claim(Service, service.pk)  # free: the next step claims it at once

    host = Host.objects.create(name="saved-host", satellite_url="http://127.0.0.1:9", key_id="k-saved", secret="s")
    loaded_before = Host.objects.get(pk=host.pk)
    assert loop.claim(Host, host.pk)
    loaded_before.save()
    assert not loop.claim(Host, host.pk)  # still held by the first claim


@pytest.mark.django_db
def test_a_save_of_a_row_deleted_meanwhile_inserts_it_as_django_does(users):
    service = Service.objects.create(name="gone", image="boatload-test/busybox:latest", owner=users["owner"])
    stale = Service.objects.get(pk=service.pk)
    Service.objects.filter(pk=service.pk).delete()
    stale.save()  # no "did not affect any rows" DatabaseError (a 500 in a view)
    assert Service.objects.filter(pk=service.pk).exists()
