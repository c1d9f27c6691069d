"""Genisys paths exactly as its documentation gives them (no /v1 prefix, no trailing slash needed)."""
from rest_framework.routers import SimpleRouter

from genisys.api import views


class OptionalSlashRouter(SimpleRouter):
    """Routes that match with and without the trailing slash, as every BoatLoad path does."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("compute", views.ComputeViewSet, basename="compute")
router.register("service", views.ServiceViewSet, basename="service")
urlpatterns = router.urls
