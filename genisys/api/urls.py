"""Genisys paths exactly as its documentation gives them (no /v1 prefix, no trailing slash needed)."""
from django.urls import re_path
from rest_framework.routers import SimpleRouter

from genisys.api import deployments, hooks, logs, redeploy, views

NAME = rf"(?P<name>{views.NAME})"


class OptionalSlashRouter(SimpleRouter):
    """Routes that match with and without the trailing slash, as every BoatLoad path does."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("compute", views.ComputeViewSet, basename="compute")
router.register("service", views.ServiceViewSet, basename="service")
urlpatterns = [
    # Any name and secret reach the hook's view, which answers 404 for what it does not know.
    re_path(r"^service/(?P<name>[^/]+)/scale/(?P<secret>[^/]+)/?$", hooks.ServiceHookScaleView.as_view(),
            name="service-scale-hook"),
    re_path(rf"^service/{NAME}/hooks/?$", hooks.ServiceHookListView.as_view(), name="service-hooks"),
    re_path(rf"^service/{NAME}/hooks/(?P<hook_id>[^/]+)/revoke/?$", hooks.ServiceHookRevokeView.as_view(),
            name="service-hook-revoke"),
    re_path(rf"^service/{NAME}/versions/?$", deployments.ServiceVersionsView.as_view(), name="service-versions"),
    re_path(rf"^service/{NAME}/deployments/?$", deployments.DeploymentListView.as_view(), name="deployment-list"),
    re_path(rf"^service/{NAME}/deployments/(?P<id>[0-9]{{1,12}})/?$", deployments.DeploymentDetailView.as_view(),
            name="deployment-detail"),
    re_path(rf"^service/{NAME}/deployments/(?P<id>[0-9]{{1,12}})/(?P<action>(?:pause|resume|rollback))/?$",
            deployments.DeploymentActionView.as_view(), name="deployment-action"),
    re_path(rf"^service/{NAME}/logs/?$", logs.ServiceLogListView.as_view(), name="service-logs"),
    re_path(rf"^service/{NAME}/logs/(?P<container>[0-9a-f]{{64}})/?$", logs.ServiceLogView.as_view(),
            name="service-log"),
    re_path(rf"^service/{NAME}/hook/?$", redeploy.ServiceHookView.as_view(), name="service-hook"),
    re_path(r"^hooks/(?P<secret>.+?)/?$", redeploy.HookTriggerView.as_view(), name="hook-trigger"),
    *router.urls,
]
