"""GET /v1/audit/: the audit log, newest first, filtered, cursor-paged, or all of it as CSV (streamed).
GET /v1/{container,host,service}/<id>/metrics/history: the metrics history (observe/history.py)."""
import csv
import time
from datetime import datetime

import django_filters
from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, renderers, serializers
from rest_framework.generics import get_object_or_404  # a malformed id is a 404 too, never a 500
from rest_framework.response import Response
from rest_framework.views import APIView

from boatload.models import Container, Host
from common.env import parse_duration
from common.pagination import CursorPage
from genisys.models import Service
from observe import history
from observe.models import AuditEntry, MetricPoint


class AuditSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")

    class Meta:
        model = AuditEntry
        fields = ["id", "created", "actor", "address", "action", "target_type", "target", "method", "path",
                  "request", "detail", "result", "status_code", "error_code", "message", "request_id"]


class AuditFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name")
    action = django_filters.CharFilter()
    action_prefix = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    target = django_filters.CharFilter()
    target_type = django_filters.CharFilter()
    result = django_filters.ChoiceFilter(choices=AuditEntry.Result.choices)
    address = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["actor", "action", "action_prefix", "target", "target_type", "result", "address", "since", "until"]


class AuditCursor(CursorPage):
    ordering = "-id"
    page_size = settings.AUDIT_PAGE_SIZE


class CSVRenderer(renderers.BaseRenderer):
    """Names `?format=csv` for DRF's content negotiation; the view streams the rows itself."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else str(data).encode()


CSV_COLUMNS = ["id", "created", "actor_name", "address", "action", "target_type", "target", "method", "path",
               "result", "status_code", "error_code", "message", "request_id", "request", "detail"]


class _Line:
    def write(self, value):
        return value


def _cell(value):
    """A cell a spreadsheet shows as text: no formula from a value that starts with = + - @."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(rows):
    writer = csv.writer(_Line())
    yield writer.writerow(CSV_COLUMNS)
    for row in rows.iterator(chunk_size=500):
        yield writer.writerow([_cell(row.created.isoformat() if name == "created" else getattr(row, name))
                               for name in CSV_COLUMNS])


class AuditView(generics.ListAPIView):
    """Every change and login: staff see all of them, a user their own. `?format=csv` exports the filtered
    entries (all of them, not a page), streamed."""

    serializer_class = AuditSerializer
    filterset_class = AuditFilter
    pagination_class = AuditCursor
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CSVRenderer]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditEntry.objects.none()
        rows = AuditEntry.objects.all()
        return rows if self.request.user.is_staff else rows.filter(actor=self.request.user)

    # Both keyed by media type: drf-spectacular takes the smallest key's serializer as the main one, and with
    # a bare 200 beside (200, "text/csv") that was the CSV string, so the list's filters and paging went unshown.
    @extend_schema(responses={(200, "application/json"): AuditSerializer(many=True),
                              (200, "text/csv"): OpenApiTypes.STR},
                   parameters=[OpenApiParameter("format", str, enum=["json", "csv"],
                                                description="`csv`: every matching entry as CSV, streamed.")])
    def get(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            rows = self.filter_queryset(self.get_queryset()).order_by("-id")
            response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="boatload-audit.csv"'
            return response
        return super().get(request, *args, **kwargs)


# ---- metrics history -----------------------------------------------------------------------------

class HistoryQuerySerializer(serializers.Serializer):
    since = serializers.CharField(required=False, default="1h",
                                  help_text="The range's start: an ISO 8601 time, or how long ago (`30m`, `6h`, "
                                            "`7d`). Default 1h.")
    step = serializers.CharField(required=False, allow_blank=False,
                                 help_text="Seconds between points (`15s`, `5m`, `1h`); default the fleet "
                                           "collection interval. At least the roll-up step past the raw "
                                           "retention; at most BOATLOAD_HISTORY_MAX_POINTS points a range.")

    def validate_since(self, value):
        try:
            return int(time.time() - parse_duration(value))
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise serializers.ValidationError("give an ISO 8601 time or a duration such as 30m") from None
        if moment.tzinfo is None:
            raise serializers.ValidationError("give the time zone, e.g. 2026-01-01T00:00:00Z")
        return int(moment.timestamp())

    def validate_step(self, value):
        try:
            step = int(parse_duration(value))
        except ValueError:
            raise serializers.ValidationError("give a duration such as 15s or 5m") from None
        if step < 1:
            raise serializers.ValidationError("must be at least 1 s")
        return step

    def validate(self, data):
        step = data.get("step") or max(1, int(settings.FLEET_INTERVAL))
        _, data["step"] = history.resolution(since=data["since"], step=step)
        if (time.time() - data["since"]) / data["step"] > settings.HISTORY_MAX_POINTS:
            raise serializers.ValidationError(
                {"step": f"over {settings.HISTORY_MAX_POINTS} points from since: give a larger step"})
        return data


class HistoryPointSerializer(serializers.Serializer):
    t = serializers.IntegerField(help_text="Unix time (s) of the step's start.")
    cpu_percent = serializers.FloatField(allow_null=True, help_text="Mean, in % of one CPU.")
    memory_bytes = serializers.IntegerField(allow_null=True, help_text="Mean memory in use.")
    memory_limit_bytes = serializers.IntegerField(allow_null=True)
    cpu_seconds = serializers.FloatField(allow_null=True, help_text="CPU time used (cumulative; the step's last).")
    network_rx_bytes = serializers.IntegerField(allow_null=True, help_text="Cumulative; the step's last.")
    network_tx_bytes = serializers.IntegerField(allow_null=True)
    block_read_bytes = serializers.IntegerField(allow_null=True)
    block_write_bytes = serializers.IntegerField(allow_null=True)
    pids = serializers.IntegerField(allow_null=True, help_text="Mean.")
    containers = serializers.IntegerField(required=False, help_text="Hosts and services: containers in the step.")


class HistorySerializer(serializers.Serializer):
    resolution = serializers.ChoiceField(choices=["raw", "rollup"], help_text="Raw samples or roll-ups.")
    step = serializers.IntegerField(help_text="Seconds between points, as served.")
    since = serializers.IntegerField(help_text="Unix time (s) of the range's start.")
    points = HistoryPointSerializer(many=True)


class HistoryView(APIView):
    """A metrics history, read from Postgres (the reconciler writes it; no satellite is asked)."""

    totals = False

    def points(self, request, **kwargs):
        """The MetricPoint rows of the object the path names, as far as the user may see them (404)."""
        raise NotImplementedError

    @extend_schema(parameters=[HistoryQuerySerializer], responses=HistorySerializer)
    def get(self, request, **kwargs):
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        points = self.points(request, **kwargs)
        since, step = query.validated_data["since"], query.validated_data["step"]
        return Response({**history.series(points, since=since, step=step, totals=self.totals), "since": since})


class ContainerHistoryView(HistoryView):
    """The container's metrics over time, raw or rolled up; also once it is deleted. A user reads their own
    containers' only (another's is 404)."""

    def points(self, request, uuid):
        row = get_object_or_404(Container.objects.visible_to(request.user), uuid=uuid)
        return MetricPoint.objects.filter(container=str(row.uuid))


class HostHistoryView(HistoryView):
    """The host's totals over time: the sum over its containers (a user's: over their own only)."""

    totals = True

    def points(self, request, name):
        host = get_object_or_404(Host, name=name)
        points = MetricPoint.objects.filter(host=host.name)
        return points if request.user.is_staff else points.filter(owner=request.user)


class ServiceHistoryView(HistoryView):
    """The service's totals over time: the sum over its containers on every compute (own services only)."""

    totals = True

    def points(self, request, name):
        service = get_object_or_404(Service.objects.visible_to(request.user), name=name)
        return MetricPoint.objects.filter(service=service.name)
