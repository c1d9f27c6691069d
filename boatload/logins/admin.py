"""Admin for API keys: the library's key admin (the key shown once when made), with owner and last use."""
from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as UnusedAPIKey

from boatload.logins.models import KEY_MARKER, APIKey

admin.site.unregister(UnusedAPIKey)  # the library's own model: BoatLoad's keys are boatload.logins.APIKey


@admin.register(APIKey)
class BoatLoadAPIKeyAdmin(APIKeyModelAdmin):
    list_display = [*APIKeyModelAdmin.list_display, "user", "last_used"]
    list_filter = ["revoked", "created"]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "last_used"]

    def save_model(self, request, obj, form=None, change=False):
        if obj.pk:
            return super().save_model(request, obj, form, change)
        key = KEY_MARKER + APIKey.objects.assign_key(obj)
        obj.save()
        messages.warning(request, f"The API key for {obj.name} is: {key} — store it now: it is not shown again.")
