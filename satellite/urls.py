"""Routes of a satellite."""
from django.urls import path, re_path, register_converter

from satellite import views
from satellite.connector import views as connector


class ContainerId:
    """The API's row uuid: the satellite finds the container by its label, never by name or id prefix."""

    regex = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(ContainerId, "cid")

urlpatterns = [
    path("healthz", views.healthz),
    path("info", views.info),
    path("images", views.images),
    path("stats", views.stats_all),
    path("containers", views.container_list),
    path("containers/raw", views.container_raw),
    path("containers/<cid:container_id>", views.container_detail),
    path("containers/<cid:container_id>/state", views.container_state),
    path("containers/<cid:container_id>/logs", views.container_logs),
    path("containers/<cid:container_id>/script", views.container_script),
    path("containers/<cid:container_id>/changes", views.container_changes),
    path("containers/<cid:container_id>/files", views.container_files),
    path("containers/<cid:container_id>/files/<path:path>", views.container_file),
    path("containers/<cid:container_id>/filebynum/<int:number>", views.container_file_by_number),
    path("containers/<cid:container_id>/archive", views.container_archive),
    path("containers/<cid:container_id>/stats", views.container_stats),
    path("containers/<cid:container_id>/<str:action>", views.container_action),
    # The Genisys connector protocol, at its documented paths.
    re_path(r"^service/?$", connector.ServiceListView.as_view()),
    re_path(r"^service/(?P<name>[^/]+)/scale/?$", connector.ServiceScaleView.as_view()),
    re_path(r"^service/(?P<name>[^/]+)/status/?$", connector.ServiceStatusView.as_view()),
    re_path(r"^service/(?P<name>[^/]+)/slots/?$", connector.SlotsView.as_view()),
    re_path(r"^service/(?P<name>[^/]+)/rollout/?$", connector.RolloutView.as_view()),
    re_path(r"^service/(?P<name>[^/]+)/slots/(?P<slot>[0-9]{1,6})/?$", connector.SlotView.as_view()),
    # Output of a service's containers here, the removed ones' kept copies too (signed: not the protocol's).
    re_path(r"^service/(?P<name>[^/]+)/logs/?$", connector.SlotLogListView.as_view()),
    re_path(r"^service/(?P<name>[^/]+)/logs/(?P<container>[0-9a-f]{64})/?$", connector.SlotLogView.as_view()),
    re_path(r"^service/(?P<name>[^/]+)/?$", connector.ServiceDetailView.as_view()),
]

handler404 = "common.errors.json_404"
handler500 = "common.errors.json_500"
handler400 = "common.errors.json_400"
handler403 = "common.errors.json_403"
