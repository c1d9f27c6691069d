"""Redeploy hooks: a per-service URL holding a secret that starts a deployment of the current definition.

The secret is shown once, when the hook is made; only its SHA-256 is kept. A hook is stable across
redeploys until it is rotated (made again) or revoked. Calling it re-resolves the service's image tag
on every satellite compute of the service (`GET /images` of its host): a new image under the same tag
is a new version, rolled out by a deployment like any definition change.
"""
import hashlib
import secrets

from django.utils import timezone

from boatload.satellite_client import SatelliteClient
from common.errors import Conflict, NotFound
from genisys import deploy
from genisys.models import RedeployHook
from observe import audit

PREFIX = "blrh_"


def _digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def hook_create(*, service, user=None):
    """A new secret for the service's hook (the old one, if any, stops working); returns the secret."""
    secret = PREFIX + secrets.token_urlsafe(32)
    RedeployHook.objects.update_or_create(service=service, defaults={"digest": _digest(secret), "created_by": user,
                                                                     "last_used": None})
    return secret


def hook_revoke(*, service):
    if not RedeployHook.objects.filter(service=service).delete()[0]:
        raise NotFound(f"Service {service.name} has no redeploy hook.")


def hook_find(secret):
    """The hook of `secret`; 404 for any secret that is not a live hook's (nothing else is said)."""
    hook = RedeployHook.objects.select_related("service", "created_by").filter(digest=_digest(secret)).first()
    if hook is None:
        raise NotFound("No such redeploy hook (a wrong, rotated or revoked secret).")
    return hook


def image_ids(service):
    """{compute: image id} that the service's image (repo:tag) names now on each satellite compute using it.
    A host without the image: 409 naming the compute (a redeploy there could only fail)."""
    wanted = service.image if ":" in service.image.rsplit("/", 1)[-1] else f"{service.image}:latest"
    found = {}
    for desired in service.desired.select_related("compute").filter(number__gt=0):
        host = desired.compute.host
        if host is None:  # an external connector: its images are not ours to ask
            continue
        ids = [row["id"] for row in SatelliteClient(host).images() if wanted in (row.get("tags") or [])]
        if not ids:
            raise Conflict(f"compute {desired.compute.name} has no image {wanted}.",
                           detail={"field": "image", "compute": desired.compute.name}, code="image_missing")
        found[desired.compute.name] = ids[0]
    return found


def hook_redeploy(*, hook):
    """A deployment of the service's current definition with its image re-resolved (a new version when the
    tag now names another image)."""
    service = hook.service
    resolved = image_ids(service)  # a failure here is recorded by the request's audit entry (failed)
    # The deployment and its audit entry in one transaction: neither is ever committed without the other.
    with audit.change("service.redeploy", target=service.name, actor=hook.created_by) as entry:
        before, now = deploy.version_record(service=service, user=hook.created_by, image_ids=resolved)
        deployment = deploy.deployment_create(service=service, kind="definition", from_version=before or now,
                                              to_version=now, user=hook.created_by)
        RedeployHook.objects.filter(pk=hook.pk).update(last_used=timezone.now())
        entry.detail = {**entry.detail, "deployment": deployment.pk, "from_version": before or now,
                        "to_version": now}
    return deployment
