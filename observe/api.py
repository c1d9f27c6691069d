"""GET /v1/audit/: the audit log, newest first, filtered, cursor-paged, or all of it as CSV (streamed)."""
import csv

import django_filters
from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, renderers, serializers

from common.pagination import CursorPage
from observe.models import AuditEntry


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
