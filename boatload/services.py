"""Work of the API server that crosses models or calls satellites."""
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import exceptions

from boatload.errors import Conflict
from boatload.models import Host, JoinToken

HOST_FACTS = ("docker_version", "cpus", "memory_bytes", "address_internal", "address_cloud", "address_public")


def host_enrol(*, token, name, satellite_url, labels=None, **facts):
    """Turn a one-time join token into a Host with its own key id and secret.

    A reused, expired or unknown token is refused with 401 and nothing is created.
    """
    with transaction.atomic():
        join = JoinToken.usable(token)
        if join is None:
            raise exceptions.AuthenticationFailed("The join token is unknown, expired or already used.")
        if Host.objects.filter(name=name).exists():
            raise Conflict(f"A host named {name} is already enrolled; unregister it first.",
                           detail={"field": "name"})
        key_id, secret = Host.new_credentials()
        host = Host.objects.create(
            name=name, satellite_url=satellite_url, labels=labels or {}, key_id=key_id, secret=secret,
            last_seen=timezone.now(), state=Host.State.ACTIVE,
            **{k: v for k, v in facts.items() if k in HOST_FACTS and v is not None},
        )
        join.used = timezone.now()
        join.host = host
        join.save(update_fields=["used", "host"])
    return host


def host_heartbeat(*, host, **facts):
    """Record that a satellite is alive; a down host comes back active, a draining one stays draining."""
    host.last_seen = timezone.now()
    for field in HOST_FACTS:
        if facts.get(field) is not None:
            setattr(host, field, facts[field])
    if host.state == Host.State.DOWN:
        host.state = Host.State.ACTIVE
    host.save()
    return host


def hosts_mark_silent_down():
    """Mark active hosts whose satellite missed its heartbeats as down; return how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.HOST_DOWN_AFTER)
    return (Host.objects.filter(state=Host.State.ACTIVE)
            .filter(Q(last_seen__lt=cutoff) | Q(last_seen__isnull=True))
            .update(state=Host.State.DOWN))


def satellite_join_command(token):
    """The one line that starts a satellite on a new host and enrols it with `token`."""
    return (f"BOATLOAD_API_URL={settings.PUBLIC_URL} SATELLITE_JOIN_TOKEN={token} "
            "SATELLITE_BIND=0.0.0.0 python -m satellite")
