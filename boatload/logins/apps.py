from django.apps import AppConfig


class LoginsConfig(AppConfig):
    name = "boatload.logins"
    label = "boatload_logins"
    verbose_name = "Logins and tokens"

    def ready(self):
        from boatload.logins import tokens

        tokens.connect_signals()
