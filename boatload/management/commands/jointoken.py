"""Issue a one-time join token for a new satellite and print how to use it."""
from django.core.management.base import BaseCommand

from boatload import services
from boatload.models import JoinToken


class Command(BaseCommand):
    help = "Create a one-time, expiring join token for a satellite."

    def add_arguments(self, parser):
        parser.add_argument("--ttl", type=int, default=None, help="seconds until it expires")
        parser.add_argument("--note", default="")
        parser.add_argument("--quiet", action="store_true", help="print only the token")

    def handle(self, *args, ttl, note, quiet, **options):
        row, token = JoinToken.issue(ttl=ttl, note=note)
        if quiet:
            self.stdout.write(token)
            return
        self.stdout.write(f"Join token (expires {row.expires:%Y-%m-%d %H:%M} UTC, usable once):\n{token}\n")
        self.stdout.write("On the new host, set HOST_ADDRESS to its address as the API reaches it, then run:\n"
                          f"{services.satellite_join_command(token)}\n"
                          f"or, in a virtualenv install:\n{services.satellite_join_command_venv(token)}")
