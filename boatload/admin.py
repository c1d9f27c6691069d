"""Django admin for hosts and join tokens."""
from django.contrib import admin, messages

from boatload import services
from boatload.adminforms import checked_by
from boatload.api.serializers import TemplateSerializer
from boatload.models import Container, Host, JoinToken, Template


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "last_seen", "satellite_url", "docker_version", "cpus"]
    list_filter = ["state"]
    search_fields = ["name", "satellite_url"]
    readonly_fields = ["key_id", "last_seen", "docker_version", "cpus", "memory_bytes", "created"]
    actions = ["drain", "activate"]

    @admin.action(description="Drain: take no new containers")
    def drain(self, request, queryset):
        for host in queryset:
            host.drain()

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
        messages.warning(request, f"Join token (shown once): {token} — on the new host set HOST_ADDRESS, then run: "
                                  f"{services.satellite_join_command(token)}")


def _each(request, queryset, action, label):
    """Run a bulk action on every selected row (services.container_bulk); report failures instead of stopping."""
    outcomes = services.container_bulk(rows=list(queryset.select_related("host", "owner")), action=action)
    for row, error in outcomes:
        if error is not None:
            messages.error(request, f"{row.uuid}: {error.message}")
    if done := sum(error is None for _, error in outcomes):
        messages.success(request, f"{label} {done} container(s).")


@admin.register(Container)
class ContainerAdmin(admin.ModelAdmin):
    list_display = ["uuid", "owner", "host", "image_name", "state", "health", "exit_code", "created"]
    list_filter = ["state", "health", "host", "owner"]
    search_fields = ["uuid", "name", "docker_id", "image_name", "service"]
    list_select_related = ["owner", "host"]
    readonly_fields = [f.name for f in Container._meta.fields]
    actions = ["stop", "restart", "remove"]

    def has_add_permission(self, request):
        return False  # containers are made through the API, which records intent and calls the host

    @admin.action(description="Stop")
    def stop(self, request, queryset):
        _each(request, queryset, "stop", "Stopped")

    @admin.action(description="Restart")
    def restart(self, request, queryset):
        _each(request, queryset, "restart", "Restarted")

    @admin.action(description="Delete from its host")
    def remove(self, request, queryset):
        _each(request, queryset, "delete", "Deleted")


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = checked_by(TemplateSerializer)  # the body checked whole and stored canonical, as through the API
    list_display = ["name", "description", "updated"]
    search_fields = ["name", "description"]
