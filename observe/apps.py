from django.apps import AppConfig


class ObserveConfig(AppConfig):
    """Observability: the Prometheus endpoint and the audit log (issue 17)."""

    name = "observe"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from common.remote import RemoteClient
        from observe import audit, metrics

        audit.connect_login_signals()
        RemoteClient.observe = staticmethod(metrics.remote_call)  # every satellite and connector call timed
