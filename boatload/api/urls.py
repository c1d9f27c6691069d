"""Routes of the v1 API."""
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from boatload.api import views

router = DefaultRouter(trailing_slash=True)
router.register("host", views.HostViewSet, basename="host")
router.register("jointoken", views.JoinTokenViewSet, basename="jointoken")

urlpatterns = [
    path("host/enrol/", views.EnrolView.as_view(), name="host-enrol"),
    path("host/heartbeat/", views.HeartbeatView.as_view(), name="host-heartbeat"),
    path("", include(router.urls)),
]
