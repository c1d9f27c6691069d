"""Revocation of JWTs: a token stops working when what it stands for changes.

Two mechanisms, each for what it does best:

- Refresh tokens are revoked through simplejwt's `token_blacklist` app: every refresh
  token is recorded when issued (OutstandingToken); a password change, a deactivation or a
  deletion of the user blacklists all of that user's outstanding tokens, in the same
  transaction as the change. A blacklisted token stays dead if the user is reactivated.
- Access tokens (short-lived, checked on every request) are not looked up in a table:
  simplejwt's CHECK_REVOKE_TOKEN puts a hash of the password hash in each token and
  JWTAuthentication compares it with the user's current one; an inactive or deleted user
  is refused by JWTAuthentication already.

RefreshSerializer also refuses, instead of answering 500 or a new access token, a refresh
token whose user is gone, inactive, or has changed password since it was issued (tokens
issued before the blacklist existed are covered by that too).
"""
from django.contrib.auth import get_user_model
from django.db.models.signals import pre_delete, pre_save
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import get_md5_hash_password


def user_tokens_revoke(*, user):
    """Blacklist every outstanding refresh token of `user`; returns how many were newly blacklisted."""
    outstanding = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
    return len(BlacklistedToken.objects.bulk_create([BlacklistedToken(token=token) for token in outstanding],
                                                    ignore_conflicts=True))


def _revoke_on_change(sender, instance, update_fields=None, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # e.g. last_login on every session login: nothing that revokes
    before = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    if before["password"] != instance.password or (before["is_active"] and not instance.is_active):
        user_tokens_revoke(user=instance)


def _revoke_on_delete(sender, instance, **kwargs):
    user_tokens_revoke(user=instance)  # before the delete sets OutstandingToken.user to NULL


def connect_signals():
    model = get_user_model()
    pre_save.connect(_revoke_on_change, sender=model, dispatch_uid="boatload-revoke-on-change")
    pre_delete.connect(_revoke_on_delete, sender=model, dispatch_uid="boatload-revoke-on-delete")


class RefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, refusing tokens of users that are gone, inactive or have a new password."""

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])  # signature, expiry and the blacklist
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
        if (user is None or not api_settings.USER_AUTHENTICATION_RULE(user)
                or refresh.payload.get(api_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password)):
            raise InvalidToken("This token's user is gone, inactive or has changed password.")
        return super().validate(attrs)
