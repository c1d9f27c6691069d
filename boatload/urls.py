"""URLs of the API server."""
from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import TokenBlacklistView, TokenObtainPairView, TokenRefreshView, TokenVerifyView

from boatload.api.views import healthz
from boatload.auth import SchemaPermission
from boatload.logins.throttles import LOGIN_THROTTLES, throttle_form_logins
from common.errors import json_404
from observe.metrics import metrics_view
from observe.urls import history_urlpatterns

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; BOATLOAD_METRICS_ALLOW / _TOKEN (observe/metrics.py)
    path("admin/login/", throttle_form_logins(admin.site.login)),  # the admin's own name stays "admin:login"
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/console/"), name="home"),  # the operator console
    path("console/", include("console.urls")),
    path("v1/auth/token/", TokenObtainPairView.as_view(throttle_classes=LOGIN_THROTTLES), name="token-obtain"),
    path("v1/auth/token/refresh/", TokenRefreshView.as_view(throttle_classes=LOGIN_THROTTLES), name="token-refresh"),
    path("v1/auth/token/verify/", TokenVerifyView.as_view(throttle_classes=LOGIN_THROTTLES), name="token-verify"),
    # Log out: the refresh token dies (the blacklist, boatload/logins/tokens.py).
    path("v1/auth/token/revoke/", TokenBlacklistView.as_view(throttle_classes=LOGIN_THROTTLES), name="token-revoke"),
    path("v1/auth/session/login/", throttle_form_logins(LoginView.as_view(template_name="rest_framework/login.html"))),
    path("v1/auth/session/", include("rest_framework.urls")),
    path("v1/schema/", SpectacularAPIView.as_view(permission_classes=[SchemaPermission]), name="schema"),
    path("v1/docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[SchemaPermission]),
         name="docs"),
    path("v1/audit/", include("observe.urls")),
    path("v1/", include(history_urlpatterns)),  # …/<id>/metrics/history of containers, hosts, services
    path("v1/", include("boatload.api.urls")),
    path("", include("genisys.api.urls")),
    # Anything else is a JSON 404, with DEBUG on too (Django's debug page is HTML).
    re_path(r"^.*$", json_404),
]

handler400 = "common.errors.json_400"
handler403 = "common.errors.json_403"
handler404 = "common.errors.json_404"
handler500 = "boatload.outage.server_error"  # the JSON 500, or 503 when the database is down
