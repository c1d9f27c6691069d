"""Django admin for computes, services (with their desired numbers and a scale action), orders and scale hooks."""
from django.contrib import admin, messages

from boatload.adminforms import checked_by
from genisys import deploy, services
from genisys.api.serializers import (
    ComputeSerializer,
    ComputeUpdateSerializer,
    ServiceSerializer,
    ServiceUpdateSerializer,
)
from genisys.models import Compute, Deployment, Desired, ScaleHook, ScaleOrder, Service, ServiceVersion


@admin.register(Compute)
class ComputeAdmin(admin.ModelAdmin):
    form = checked_by(ComputeSerializer, ComputeUpdateSerializer)  # the host link as the API finds it
    list_display = ["name", "connector", "host", "position"]


class DesiredInline(admin.TabularInline):
    model = Desired
    extra = 0
    fields = ["compute", "number", "generation"]
    readonly_fields = ["generation"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    form = checked_by(ServiceSerializer, ServiceUpdateSerializer)  # a definition the API would refuse is refused
    list_display = ["name", "owner", "image", "managed_by", "updated"]
    list_filter = ["managed_by", "owner"]
    inlines = [DesiredInline]
    actions = ["scale_to_desired"]
    readonly_fields = ["version"]

    def save_model(self, request, obj, form, change):
        """A change made here is a new version with its deployment, as through the API."""
        super().save_model(request, obj, form, change)
        deploy.definition_changed(service=obj, user=request.user)

    @admin.action(description="Scale to the desired numbers now")
    def scale_to_desired(self, request, queryset):
        for service in queryset:
            for desired in service.desired.select_related("compute"):
                order = services.order_send(service=service, compute=desired.compute, number=desired.number,
                                            source="admin", user=request.user)
                level = messages.SUCCESS if order.result == "ok" else messages.ERROR
                messages.add_message(request, level, f"{service} on {desired.compute}: {order.result} "
                                                     f"{order.message}")


@admin.register(ScaleOrder)
class ScaleOrderAdmin(admin.ModelAdmin):
    list_display = ["created", "service", "compute", "source", "requested_by", "from_number", "to_number",
                    "result", "running"]
    list_filter = ["result", "source", "compute"]
    readonly_fields = [f.name for f in ScaleOrder._meta.fields]

    def has_add_permission(self, request):
        return False




@admin.register(ScaleHook)
class ScaleHookAdmin(admin.ModelAdmin):
    """Hooks are made through the API (their URL is shown once there); here staff see and revoke them."""

    list_display = ["prefix", "name", "service", "created_by", "created", "expiry_date", "last_used", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["name", "prefix", "service__name"]
    fields = ["prefix", "name", "service", "created_by", "created", "expiry_date", "last_used", "revoked"]
    readonly_fields = ["prefix", "service", "created_by", "created", "last_used"]

    def has_add_permission(self, request):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ServiceVersion)
class ServiceVersionAdmin(ReadOnlyAdmin):
    list_display = ["service", "number", "created_by", "created"]
    list_filter = ["service"]


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ["id", "service", "kind", "from_version", "to_version", "state", "started_by", "created",
                    "finished"]
    list_filter = ["state", "kind"]
