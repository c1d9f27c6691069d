"""Machine credentials: per-user API keys.

The row is djangorestframework-api-key's AbstractAPIKey (a name, a unique public prefix, the
SHA-512 of the key, revoked for good, an optional expiry), tied to a user and with the time it
was last used. The raw key is `blk_<prefix>.<secret>`; only its hash is stored, and it is shown
once, in the answer that made it. The marker `blk_` lets secret scanners and log masking
recognise a key; it is not part of what is hashed.
"""
from django.conf import settings
from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

KEY_MARKER = "blk_"


class APIKeyManager(BaseAPIKeyManager):
    def issue(self, *, user, name, expires=None):
        """A new key of `user`: (row, raw key). The raw key exists only in this answer."""
        row, key = self.create_key(user=user, name=name, expiry_date=expires)
        return row, KEY_MARKER + key

    def get_usable_keys(self):
        return super().get_usable_keys().select_related("user")

    def usable_for(self, raw):
        """The key row `raw` stands for, when it is not revoked, not expired and its user is active; else None.

        The library finds the row by its prefix and compares the hashes in constant time."""
        if not isinstance(raw, str):
            return None
        try:
            row = self.get_from_key(raw.removeprefix(KEY_MARKER))
        except self.model.DoesNotExist:
            return None
        if row.has_expired or not row.user.is_active:
            return None
        return row

    def visible_to(self, user):
        """Staff see every key; a user their own."""
        return self.all() if user.is_staff else self.filter(user=user)


class UsedKey(AbstractAPIKey):
    """A hashed secret (djangorestframework-api-key) that records its last use and can be revoked:
    API keys here, scale hooks in genisys."""

    last_used = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        abstract = True

    def mark_used(self):
        """Record this use (one UPDATE: concurrent uses never overwrite other columns)."""
        self.last_used = timezone.now()
        type(self).objects.filter(pk=self.pk).update(last_used=self.last_used)

    def revoke(self):
        self.revoked = True
        self.save(update_fields=["revoked"])


class APIKey(UsedKey):
    objects = APIKeyManager()

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")

    class Meta(UsedKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
