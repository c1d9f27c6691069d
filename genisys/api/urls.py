"""Genisys paths exactly as its documentation gives them (no /v1 prefix, no trailing slash needed)."""
from django.urls import re_path

from genisys.api import deployments, hooks, views

NAME = r"(?P<name>[a-zA-Z0-9][a-zA-Z0-9_.-]*)"

urlpatterns = [
    re_path(r"^compute/?$", views.ComputeListView.as_view(), name="compute-list"),
    re_path(rf"^compute/{NAME}/?$", views.ComputeDetailView.as_view(), name="compute-detail"),
    re_path(r"^service/?$", views.ServiceListView.as_view(), name="service-list"),
    re_path(rf"^service/{NAME}/scale/?$", views.ServiceScaleView.as_view(), name="service-scale"),
    re_path(rf"^service/{NAME}/status/?$", views.ServiceStatusView.as_view(), name="service-status"),
    re_path(rf"^service/{NAME}/orders/?$", views.ServiceOrdersView.as_view(), name="service-orders"),
    re_path(rf"^service/{NAME}/versions/?$", deployments.ServiceVersionsView.as_view(), name="service-versions"),
    re_path(rf"^service/{NAME}/deployments/?$", deployments.DeploymentListView.as_view(), name="deployment-list"),
    re_path(rf"^service/{NAME}/deployments/(?P<id>[0-9]{{1,12}})/?$", deployments.DeploymentDetailView.as_view(),
            name="deployment-detail"),
    re_path(rf"^service/{NAME}/deployments/(?P<id>[0-9]{{1,12}})/(?P<action>(?:pause|resume|rollback))/?$",
            deployments.DeploymentActionView.as_view(), name="deployment-action"),
    re_path(rf"^service/{NAME}/hook/?$", hooks.ServiceHookView.as_view(), name="service-hook"),
    re_path(r"^hooks/(?P<secret>.+?)/?$", hooks.HookTriggerView.as_view(), name="hook-trigger"),
    re_path(rf"^service/{NAME}/?$", views.ServiceDetailView.as_view(), name="service-detail"),
]
