"""Rows a reconciler claims (boatload.loop.claim): `claimed_until` is written only by a claim's conditional
UPDATE and its release, never by a model's save().

A row loaded while a claim held it and saved after the release would write the claim back (the service or
host then held for a claim that ended: no reconciler steps it until that time passes, up to two minutes); one
loaded before a claim and saved during it would free a row a reconciler holds (two then act on it at once).
"""
from django.db import DatabaseError, transaction

CLAIM_FIELD = "claimed_until"


class ClaimKept:
    """Mixed into a model with a `claimed_until` field: save() of a row that exists writes every other field."""

    def save(self, *args, **kwargs):
        if self._state.adding or kwargs.get("update_fields") is not None or kwargs.get("force_insert"):
            return super().save(*args, **kwargs)
        fields = [field.name for field in self._meta.concrete_fields
                  if not field.primary_key and field.name != CLAIM_FIELD]
        try:
            with transaction.atomic(using=kwargs.get("using")):  # a savepoint: the error leaves an outer one usable
                return super().save(*args, **{**kwargs, "update_fields": fields})
        except DatabaseError as error:
            if "did not affect any rows" not in str(error):
                raise
            return super().save(*args, **kwargs)  # the row is gone meanwhile: saved as Django saves one (inserted)
