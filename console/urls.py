"""Routes of the operator console, under /console/."""
from django.contrib.auth import views as auth_views
from django.urls import path

from boatload.logins.throttles import throttle_form_logins
from console import views

app_name = "console"
urlpatterns = [
    path("login/", throttle_form_logins(auth_views.LoginView.as_view(  # the API's login throttles
        template_name="console/login.html", redirect_authenticated_user=True)), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("dashboard/panel", views.dashboard_panel, name="dashboard-panel"),
    path("containers/", views.container_list, name="containers"),
    path("containers/bulk", views.container_bulk, name="containers-bulk"),
    path("containers/new", views.container_create, name="create"),
    path("container/<uuid:uuid>/", views.container_detail, name="container"),
    path("container/<uuid:uuid>/<slug:action>", views.container_action, name="container-action"),
    path("services/", views.service_list, name="services"),
    path("service/<str:name>/", views.service_detail, name="service"),
    path("service/<str:name>/deployment", views.service_deployment, name="service-deployment"),
    path("service/<str:name>/deployment/<int:id>/<slug:action>", views.deployment_action, name="deployment-action"),
    path("hosts/", views.host_list, name="hosts"),
    path("hosts/jointoken", views.jointoken_create, name="jointoken"),
    path("host/<slug:name>/<slug:action>", views.host_action, name="host-action"),
]
