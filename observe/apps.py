from django.apps import AppConfig


class ObserveConfig(AppConfig):
    """Observability: the Prometheus endpoint and the audit log (issue 17)."""

    name = "observe"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from common.remote import RemoteClient
        from observe import audit, logs, metrics

        audit.connect_login_signals()
        logs.connect_signals()  # an archive that goes takes its large object along
        RemoteClient.observe = staticmethod(metrics.remote_call)  # every satellite and connector call timed
