"""Django admin for hosts and join tokens."""
from django.contrib import admin, messages

from boatload import services
from boatload.models import Host, JoinToken


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "last_seen", "satellite_url", "docker_version", "cpus"]
    list_filter = ["state"]
    search_fields = ["name", "satellite_url"]
    readonly_fields = ["key_id", "last_seen", "docker_version", "cpus", "memory_bytes", "created"]
    actions = ["drain", "activate"]

    @admin.action(description="Drain: take no new containers")
    def drain(self, request, queryset):
        queryset.update(state=Host.State.DRAINING)

    @admin.action(description="Activate: take new containers again")
    def activate(self, request, queryset):
        queryset.update(state=Host.State.ACTIVE)


@admin.register(JoinToken)
class JoinTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "note", "created", "expires", "used", "host"]
    readonly_fields = ["prefix", "created", "expires", "used", "host", "created_by"]
    fields = ["note", "prefix", "created", "expires", "used", "host", "created_by"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token = obj.fill()
        obj.created_by = request.user
        super().save_model(request, obj, form, change)
        messages.warning(request, f"Join token (shown once): {token} — start the satellite with: "
                                  f"{services.satellite_join_command(token)}")
