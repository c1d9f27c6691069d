"""Genisys paths exactly as its documentation gives them (no /v1 prefix, no trailing slash needed)."""
from django.urls import re_path

from genisys.api import hooks, views

NAME = r"(?P<name>[a-zA-Z0-9][a-zA-Z0-9_.-]*)"

urlpatterns = [
    re_path(r"^compute/?$", views.ComputeListView.as_view(), name="compute-list"),
    re_path(rf"^compute/{NAME}/?$", views.ComputeDetailView.as_view(), name="compute-detail"),
    re_path(r"^service/?$", views.ServiceListView.as_view(), name="service-list"),
    re_path(rf"^service/{NAME}/scale/?$", views.ServiceScaleView.as_view(), name="service-scale"),
    # Any name and secret reach the hook's view, which answers 404 for what it does not know.
    re_path(r"^service/(?P<name>[^/]+)/scale/(?P<secret>[^/]+)/?$", hooks.ServiceHookScaleView.as_view(),
            name="service-scale-hook"),
    re_path(rf"^service/{NAME}/hooks/?$", hooks.ServiceHookListView.as_view(), name="service-hooks"),
    re_path(rf"^service/{NAME}/hooks/(?P<hook_id>[^/]+)/revoke/?$", hooks.ServiceHookRevokeView.as_view(),
            name="service-hook-revoke"),
    re_path(rf"^service/{NAME}/status/?$", views.ServiceStatusView.as_view(), name="service-status"),
    re_path(rf"^service/{NAME}/orders/?$", views.ServiceOrdersView.as_view(), name="service-orders"),
    re_path(rf"^service/{NAME}/?$", views.ServiceDetailView.as_view(), name="service-detail"),
]
