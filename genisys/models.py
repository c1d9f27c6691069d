"""Genisys rows: computes (connectors), services, desired numbers and the scale-order history."""
from django.conf import settings
from django.db import models
from django.db.models import Max
from django.utils.functional import cached_property

from boatload.models import Host


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
    """Anything that speaks the connector protocol; a satellite's URL makes it a signed compute."""

    name = models.SlugField(max_length=100, unique=True)
    connector = models.URLField(max_length=300)
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

    @cached_property
    def host(self):
        """The enrolled host whose satellite this connector is (calls are then signed), looked up now,
        so a satellite that enrols after its compute was defined is signed for at once."""
        url = self.connector.rstrip("/")
        return Host.objects.filter(satellite_url__in=[url, url + "/"]).first()

    @property
    def is_healthy(self):
        """A satellite compute is healthy while its host heartbeats; an external one is assumed to be."""
        return self.host is None or (self.host.state == "active" and self.host.is_healthy)


class Service(models.Model):
    """A service definition in the connector's shape; `managed_by` says who sets its size."""

    name = models.CharField(max_length=63, unique=True)
    image = models.CharField(max_length=400)
    command = models.TextField(null=True, blank=True)
    environment = models.JSONField(null=True, blank=True)
    ports = models.JSONField(null=True, blank=True)
    healthcheck = models.JSONField(null=True, blank=True, help_text="Docker's healthcheck: test, interval, …")
    update = models.JSONField(null=True, blank=True, help_text="The rolling update policy (genisys/deploy.py).")
    version = models.PositiveIntegerField(default=0, editable=False,
                                          help_text="The current version (ServiceVersion.number); 0: none yet.")
    # A reconciler holds the service until this time (boatload.loop.claim), so several never act on it twice.
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    managed_by = models.CharField(max_length=16, default="api", choices=[("api", "api"), ("consul", "consul")])
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
                "ports": self.ports, "healthcheck": self.healthcheck, "version": self.version or None}


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
                                                      ("consul", "consul"), ("admin", "admin")])
    from_number = models.IntegerField(null=True, blank=True, help_text="Running before, when known.")
    to_number = models.PositiveIntegerField()
    result = models.CharField(max_length=16, choices=[("ok", "ok"), ("failed", "failed")])
    running = models.IntegerField(null=True, blank=True, help_text="Running after, as the connector said.")
    message = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]


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
    kind = models.CharField(max_length=16, choices=[("definition", "definition"), ("scale", "scale")])
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField()
    target_version = models.PositiveIntegerField(help_text="to_version, or from_version while rolling back.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    rolling_back = models.BooleanField(default=False)
    pause_requested = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    policy = models.JSONField(help_text="The update policy, with its defaults, as it was when it started.")
    progress = models.JSONField(default=dict, help_text="Per compute: desired, updated, healthy, failed, …")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    progressed = models.DateTimeField(help_text="When a slot last became settled (progress_deadline).")
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

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
