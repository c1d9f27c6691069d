from django.apps import AppConfig


class ObserveConfig(AppConfig):
    """Observability: the Prometheus endpoint and the audit log (issue 17)."""

    name = "observe"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from observe import audit

        audit.connect_login_signals()
