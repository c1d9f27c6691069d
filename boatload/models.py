"""Rows of the API server: hosts and their join tokens, containers and templates."""
import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.claims import ClaimKept
from common.spec import observed_state


def _hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


class Host(ClaimKept, models.Model):
    """A Docker host with an enrolled satellite."""

    class State(models.TextChoices):
        ACTIVE = "active"
        DRAINING = "draining"
        DOWN = "down"

    name = models.SlugField(max_length=100, unique=True)
    satellite_url = models.URLField(max_length=300)
    address_internal = models.CharField(max_length=255, blank=True)
    address_cloud = models.CharField(max_length=255, blank=True)
    address_public = models.CharField(max_length=255, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE, db_index=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    docker_version = models.CharField(max_length=64, blank=True)
    cpus = models.PositiveIntegerField(default=0)
    memory_bytes = models.BigIntegerField(default=0)
    # What the satellite's last heartbeat said is at its host-wide bound (fetch, follow, download).
    saturated = models.JSONField(default=list, blank=True)
    # A reconciler holds a host until this time, so several reconcilers never act on it twice.
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    key_id = models.CharField(max_length=64, unique=True, editable=False)
    # The satellite holds the same secret: both ends need it to compute an HMAC.
    secret = models.CharField(max_length=128, editable=False)
    # A key being rotated in: handed to the satellite with a heartbeat answer, and made the key
    # once a heartbeat is signed with it. Until then both keys are valid.
    next_key_id = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    next_secret = models.CharField(max_length=128, blank=True, editable=False)
    # The satellite's own self-signed TLS certificate (PEM), recorded at enrolment and pinned:
    # the API trusts exactly this certificate for this host. Empty for plain HTTP on loopback.
    tls_certificate = models.TextField(blank=True, editable=False)
    # The public half (X25519, base64url) of the key pair the satellite made at enrolment;
    # rotated secrets are sealed to it, so only that satellite can read them.
    seal_public_key = models.CharField(max_length=64, blank=True, editable=False)
    # The replay check of heartbeats (services._fresh_signature), kept in the row their one UPDATE
    # writes anyway: the newest signature's bucket of seconds, and the nonces of it and the one before.
    heartbeat_at = models.BigIntegerField(null=True, blank=True, editable=False)
    heartbeat_nonces = models.TextField(blank=True, editable=False)
    heartbeat_nonces_before = models.TextField(blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def is_healthy(self):
        """Live: not marked down, and heard from within HOST_DOWN_AFTER (the one liveness rule)."""
        silence = timedelta(seconds=settings.HOST_DOWN_AFTER)
        return (self.state != self.State.DOWN and self.last_seen is not None
                and timezone.now() - self.last_seen < silence)

    def address_for(self, scope):
        """The address of this host as seen from `scope` (host → loopback)."""
        if scope == "host":
            return "127.0.0.1"
        return getattr(self, f"address_{scope}", "") or ""

    @property
    def transport(self):
        """How the API reaches the satellite: https-pinned, https-ca (no pin: hosts made by hand), http-loopback."""
        if self.satellite_url.startswith("https://"):
            return "https-pinned" if self.tls_certificate else "https-ca"
        return "http-loopback"

    def drain(self):
        """Take no new containers here: one conditional UPDATE of the state alone, so a concurrent
        heartbeat or reconciler can not undo it. True when this call changed it."""
        changed = bool(Host.objects.filter(pk=self.pk).exclude(state=self.State.DRAINING)
                       .update(state=self.State.DRAINING))
        self.state = self.State.DRAINING
        return changed

    @classmethod
    def new_credentials(cls):
        return "hk_" + secrets.token_hex(8), secrets.token_urlsafe(32)


class JoinToken(models.Model):
    """A one-time, expiring token that lets one satellite enrol; only its hash is kept."""

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    used = models.DateTimeField(null=True, blank=True)
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL, related_name="join_tokens")

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.prefix}… ({'used' if self.used else 'unused'})"

    def fill(self, ttl=None):
        """Give this unsaved row a fresh token; return the plaintext, shown once and never stored."""
        token = "bljt_" + secrets.token_urlsafe(32)
        ttl = settings.JOIN_TOKEN_TTL if ttl is None else ttl
        self.token_hash = _hash_token(token)
        self.prefix = token[:12]
        self.expires = timezone.now() + timedelta(seconds=ttl)
        return token

    @classmethod
    def issue(cls, *, user=None, ttl=None, note=""):
        """Make and save a token; return (row, plaintext)."""
        row = cls(note=note, created_by=user)
        token = row.fill(ttl)
        row.save()
        return row, token

    @classmethod
    def usable(cls, token):
        """The unused, unexpired row for `token`, locked for update; None otherwise."""
        return (cls.objects.select_for_update()
                .filter(token_hash=_hash_token(token or ""), used__isnull=True, expires__gt=timezone.now())
                .first())


class SeenNonce(models.Model):
    """Nonces of signed requests the API received (heartbeats), to refuse replays."""

    key_id = models.CharField(max_length=64)
    nonce = models.CharField(max_length=64)
    seen = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key_id", "nonce"], name="unique_nonce_per_key")]


class Template(models.Model):
    """A container template in Docker's create-container format (DockerMod)."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    body = models.JSONField(help_text="Docker create-container JSON: Image, Cmd, Env, ExposedPorts, HostConfig…")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ContainerQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Staff: every container. Others: their own (another user's is 404, like a row that does not exist)."""
        return self if user.is_staff else self.filter(owner=user)


class Container(models.Model):
    """One container BoatLoad made or is making; the row is written before Docker is asked."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        EXITED = "exited"
        FAILED = "failed"
        LOST = "lost"
        DELETED = "deleted"

    class Health(models.TextChoices):
        OK = "ok"
        UNKNOWN = "unknown"  # its host is down: nobody can say what it is doing

    # States in which a container should exist on its host.
    DEPLOYED = (State.RUNNING, State.EXITED)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="containers")
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL, related_name="containers")
    docker_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=128, blank=True)
    image_name = models.CharField(max_length=255)
    image_tag = models.CharField(max_length=128, default="latest")
    spec = models.JSONField(default=dict)
    script = models.TextField(blank=True)
    script_name = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.OK)
    exit_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    ports = models.JSONField(default=list, blank=True)
    endpoints = models.JSONField(default=list, blank=True)
    service = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ContainerQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["owner", "state", "-created"], name="container_owner_state"),
            models.Index(fields=["host", "state"], name="container_host_state"),
            models.Index(fields=["image_name"], name="container_image"),
            models.Index(fields=["service"], name="container_service"),
            models.Index(fields=["-created", "-id"], name="container_recent"),
        ]

    def __str__(self):
        return f"{self.uuid} ({self.state})"

    def observe(self, docker_state, *, docker_id=""):
        """Record what Docker's State (or a listed container's status) says; written only on a change.
        True when it changed the row. `created`/`removing` say nothing yet and change nothing."""
        state, exit_code = observed_state(docker_state.get("Status"), docker_state.get("ExitCode"))
        if not state or (state, exit_code, self.Health.OK) == (self.state, self.exit_code, self.health):
            return False
        self.state, self.exit_code, self.health = state, exit_code, self.Health.OK
        self.docker_id = self.docker_id or docker_id
        self.save(update_fields=["state", "exit_code", "health", "docker_id", "updated"])
        return True

    def record_failure(self, error):
        self.state = self.State.FAILED
        self.last_error = str(error)[:2000]
        self.save(update_fields=["state", "last_error", "updated"])
