"""Routes of observe: the audit log (/v1/audit/) and the metrics history of containers, hosts and services."""
from django.urls import re_path

from observe.api import AuditView, ContainerHistoryView, HostHistoryView, ServiceHistoryView

urlpatterns = [re_path(r"^$", AuditView.as_view(), name="audit-list")]

# Under /v1/ (boatload/urls.py), beside the v1 routers; with and without the trailing slash like them.
history_urlpatterns = [
    re_path(r"^container/(?P<uuid>[0-9a-fA-F-]{36})/metrics/history/?$", ContainerHistoryView.as_view(),
            name="container-metrics-history"),
    re_path(r"^host/(?P<name>[-a-zA-Z0-9_]+)/metrics/history/?$", HostHistoryView.as_view(),
            name="host-metrics-history"),
    re_path(r"^service/(?P<name>[^/]+)/metrics/history/?$", ServiceHistoryView.as_view(),
            name="service-metrics-history"),
]
