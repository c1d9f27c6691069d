"""Genisys rows: computes (connectors), services, desired numbers, the scale-order history and scale hooks."""
import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.db.models import Max
from rest_framework_api_key.models import BaseAPIKeyManager

from boatload.logins.models import UsedKey
from boatload.models import Host
from common.claims import ClaimKept


def port_of(url):
    """The TCP port `url` names (its scheme's default when none); None for a URL without one."""
    try:
        parts = urlsplit(url)
        return parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None


def endpoints(url):
    """{(address, port)} the host part of `url` resolves to (`localhost` and `127.0.0.1` share one);
    empty when it does not resolve."""
    port = port_of(url)
    try:
        infos = socket.getaddrinfo(urlsplit(url).hostname, port, type=socket.SOCK_STREAM) if port else []
    except (OSError, UnicodeError, ValueError):
        return set()
    return {(ipaddress.ip_address(info[4][0].split("%")[0]), port) for info in infos}


def host_reached_by(url):
    """The enrolled host whose satellite `url` reaches (its address and port), or None. Only hosts on
    the same port are resolved, so a compute elsewhere costs no name lookup."""
    port = port_of(url)
    candidates = [host for host in Host.objects.order_by("id") if port and port_of(host.satellite_url) == port]
    wanted = endpoints(url) if candidates else set()
    return next((host for host in candidates if wanted and endpoints(host.satellite_url) & wanted), None)


class ComputeQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Staff: every compute. Others: the computes their own services use (a desired number or an order)."""
        if user.is_staff:
            return self
        used = models.Q(desired__service__owner=user, desired__number__gt=0) | models.Q(orders__service__owner=user)
        return self.filter(pk__in=Compute.objects.filter(used).values("pk"))


class ServiceQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Staff: every service. Others: their own (ownerless services are staff only)."""
        return self if user.is_staff else self.filter(owner=user)


class Compute(models.Model):
    """Anything that speaks the connector protocol; one linked to a host is that host's satellite (signed)."""

    name = models.SlugField(max_length=100, unique=True)
    connector = models.URLField(max_length=300)
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL, related_name="computes",
                             help_text="The enrolled host whose satellite this connector is: calls are signed "
                                       "with its key and sent to its satellite URL.")
    token = models.CharField(max_length=200, blank=True, help_text="Bearer token for an external connector.")
    position = models.PositiveIntegerField(default=0, help_text="Order of definition: the first is the default.")
    created = models.DateTimeField(auto_now_add=True)

    objects = ComputeQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if not self.pk and not self.position:
            self.position = (Compute.objects.aggregate(m=Max("position"))["m"] or 0) + 1
        super().save(*args, **kwargs)

    def satellite(self):
        """The linked host; an unlinked compute whose connector reaches an enrolled satellite (one that
        enrolled after the compute was defined) is linked now, so a known satellite is never called
        unsigned."""
        if self.host is None:
            found = host_reached_by(self.connector)
            if found is not None:
                Compute.objects.filter(pk=self.pk, host__isnull=True).update(host=found)
                self.host = found
        return self.host

    @property
    def is_healthy(self):
        """A satellite compute is healthy while its host heartbeats; an external one is assumed to be."""
        host = self.satellite()
        return host is None or (host.state == "active" and host.is_healthy)


# Whose definition a service runs (Service.defined_by, and `definition` in a scale answer).
DEFINED_BY = [("boatload", "boatload"), ("connector", "connector")]


class Service(ClaimKept, models.Model):
    """A service definition in the connector's shape; `managed_by` says who sets its size."""

    name = models.CharField(max_length=63, unique=True)
    image = models.CharField(max_length=400)
    command = models.TextField(null=True, blank=True)
    environment = models.JSONField(null=True, blank=True)
    ports = models.JSONField(null=True, blank=True)
    healthcheck = models.JSONField(null=True, blank=True, help_text="Docker's healthcheck: test, interval, …")
    memory = models.JSONField(null=True, blank=True, help_text="Memory limit of each container: bytes, or \"256m\".")
    cpus = models.FloatField(null=True, blank=True, help_text="CPU limit of each container (1.5: one and a half).")
    update = models.JSONField(null=True, blank=True, help_text="The rolling update policy (genisys/deploy.py).")
    version = models.PositiveIntegerField(default=0, editable=False,
                                          help_text="The current version (ServiceVersion.number); 0: none yet.")
    # A reconciler holds the service until this time (boatload.loop.claim), so several never act on it twice.
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    spread = models.BooleanField(default=False, help_text="Spread evenly over the healthy computes (its last scale "
                                 "named compute \"*\", or it was rebalanced): GENISYS_REBALANCE_ON_JOIN rebalances "
                                 "it when a compute joins.")
    managed_by = models.CharField(max_length=16, default="api", choices=[("api", "api"), ("consul", "consul")])
    defined_by = models.CharField(
        max_length=16, default="boatload", choices=DEFINED_BY,
        help_text="boatload: this definition is pushed before every scale. connector: the service was defined "
                  "only on its connector; BoatLoad forwards scale orders and pushes nothing (a PUT makes it "
                  "BoatLoad's).")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="genisys_services",
                              help_text="Who may see and change it (staff: every service); none: staff only.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ServiceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def definition(self):
        """What a connector runs: the connector's shape, with BoatLoad's healthcheck and version."""
        return {"name": self.name, "image": self.image, "command": self.command, "environment": self.environment,
                "ports": self.ports, "healthcheck": self.healthcheck, "memory": self.memory, "cpus": self.cpus,
                "version": self.version or None}


def recorded_image(definition, compute_name):
    """The image id a version's definition ({…, "image_ids", "ran_image_ids"}) records for one compute, or None:
    a redeploy hook's resolution of the tag (`image_ids`) first, else the image its first container there
    ran (`ran_image_ids`, genisys.deploy.image_record). New containers of that version there start from it, so
    a tag moved since never mixes images within one version."""
    for key in ("image_ids", "ran_image_ids"):
        image = (definition.get(key) or {}).get(compute_name)
        if image:
            return image
    return None


class ServiceVersion(models.Model):
    """One version of a service definition: made on every change of what its containers run."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField(help_text="Service.definition() as it was, without name and version.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "number"], name="one_version_number")]
        ordering = ["-number"]


class Desired(models.Model):
    """How many resources of a service should run on a compute; written before any connector is asked."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="desired")
    compute = models.ForeignKey(Compute, on_delete=models.CASCADE, related_name="desired")
    number = models.PositiveIntegerField(default=0)
    generation = models.PositiveIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "compute"], name="one_desired_per_compute")]
        ordering = ["compute__position"]


class ScaleOrder(models.Model):
    """One scale order sent to a connector: who, when, from, to, and what came of it."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="orders")
    compute = models.ForeignKey(Compute, null=True, on_delete=models.SET_NULL, related_name="orders")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    source = models.CharField(max_length=16, choices=[("api", "api"), ("reconciler", "reconciler"),
                                                      ("consul", "consul"), ("admin", "admin"),
                                                      ("hook", "hook")])
    from_number = models.IntegerField(null=True, blank=True, help_text="Running before, when known.")
    to_number = models.PositiveIntegerField()
    result = models.CharField(max_length=16, choices=[("ok", "ok"), ("failed", "failed")])
    running = models.IntegerField(null=True, blank=True, help_text="Running after, as the connector said.")
    message = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]


HOOK_MARKER = "blh_"


class ScaleHookManager(BaseAPIKeyManager):
    def get_usable_keys(self):
        return super().get_usable_keys().select_related("service", "created_by")

    def issue(self, *, service, user, name, expires=None):
        """A new hook of `service`, acting as `user`: (row, raw secret). The secret exists only in this answer."""
        row, key = self.create_key(service=service, created_by=user, name=name, expiry_date=expires)
        return row, HOOK_MARKER + key

    def usable_for(self, raw, *, service_name):
        """The hook `raw` stands for on the service named `service_name`, when it is not revoked, not
        expired, and its maker is active and still reaches the service; else None."""
        try:
            row = self.get_from_key(raw.removeprefix(HOOK_MARKER))
        except self.model.DoesNotExist:
            return None
        if row.service.name != service_name or row.has_expired or not row.created_by.is_active:
            return None
        if not Service.objects.visible_to(row.created_by).filter(pk=row.service_id).exists():
            return None
        return row


class ScaleHook(UsedKey):
    """A URL holding a secret that scales one service, for callers that can send nothing but a body
    (Skynet's Consul handler). It acts with the rights of the user who made it; only the hash of the
    secret is stored (djangorestframework-api-key's AbstractAPIKey, as for API keys)."""

    objects = ScaleHookManager()

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="hooks")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scale_hooks")

    class Meta(UsedKey.Meta):
        verbose_name = "scale hook"
        verbose_name_plural = "scale hooks"


class Deployment(models.Model):
    """The roll-out of one version of a service over its computes, advanced by the reconciler
    (genisys/deploy.py); everything it needs to resume after a crash is in this row."""

    class State(models.TextChoices):
        RUNNING = "running"
        PAUSED = "paused"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        ROLLED_BACK = "rolled_back"

    ACTIVE = (State.RUNNING, State.PAUSED)

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deployments")
    kind = models.CharField(max_length=16, choices=[("definition", "definition"), ("scale", "scale"),
                                                    ("rebalance", "rebalance")])
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField()
    target_version = models.PositiveIntegerField(help_text="to_version, or from_version while rolling back.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    rolling_back = models.BooleanField(default=False)
    pause_requested = models.BooleanField(default=False)
    resumed = models.PositiveIntegerField(default=0, help_text="How many times it was resumed (a Swarm compute "
                                          "resumes an update it paused once per resume).")
    reason = models.TextField(blank=True)
    policy = models.JSONField(help_text="The update policy, with its defaults, as it was when it started.")
    progress = models.JSONField(default=dict, help_text="Per compute: desired, updated, healthy, failed, …")
    spread = models.JSONField(default=dict, blank=True,
                              help_text="A rebalance: {\"from\": {compute: number}, \"to\": {compute: number}}.")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    progressed = models.DateTimeField(help_text="When a slot last became settled (progress_deadline).")
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["service"], condition=models.Q(state__in=["running", "paused"]),
                                               name="one_active_deployment")]

    def __str__(self):
        return f"{self.service.name} #{self.pk}"

    @property
    def terminal(self):
        return self.state in (self.State.SUCCEEDED, self.State.FAILED, self.State.ROLLED_BACK)


class RedeployHook(models.Model):
    """A service's redeploy hook: a URL holding a secret (only its SHA-256 is kept), until revoked or rotated."""

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="hook")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the secret in the hook's URL.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
