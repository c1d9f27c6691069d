"""URLs of the API server."""
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView, TokenVerifyView

from boatload.api.views import healthz
from common.errors import json_404

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("v1/auth/token/", TokenObtainPairView.as_view(), name="token-obtain"),
    path("v1/auth/token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("v1/auth/token/verify/", TokenVerifyView.as_view(), name="token-verify"),
    path("v1/auth/session/", include("rest_framework.urls")),
    path("v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("v1/", include("boatload.api.urls")),
    path("", include("genisys.api.urls")),
    # Anything else is a JSON 404, with DEBUG on too (Django's debug page is HTML).
    re_path(r"^.*$", json_404),
]

handler400 = "common.errors.json_400"
handler403 = "common.errors.json_403"
handler404 = "common.errors.json_404"
handler500 = "common.errors.json_500"
