"""Routes of the v1 API."""
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from boatload.api import views
from boatload.logins.api import APIKeyViewSet

router = DefaultRouter()
router.trailing_slash = "/?"  # /v1/container/<id>/start and …/start/ both work (DESIGN.md writes both)
router.register("host", views.HostViewSet, basename="host")
router.register("jointoken", views.JoinTokenViewSet, basename="jointoken")
router.register("container", views.ContainerViewSet, basename="container")
router.register("template", views.TemplateViewSet, basename="template")
router.register("apikey", APIKeyViewSet, basename="apikey")

urlpatterns = [
    path("host/enrol/", views.EnrolView.as_view(), name="host-enrol"),
    path("host/heartbeat/", views.HeartbeatView.as_view(), name="host-heartbeat"),
    path("image/", views.ImageView.as_view(), name="image-list"),
    path("", include(router.urls)),
]
