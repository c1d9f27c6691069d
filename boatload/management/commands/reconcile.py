"""The reconciler loop of the API server: keeps host and container rows true to what hosts hold.

Several may run at once; each step claims its rows with conditional updates. No outage ends
the loop: a pass that hits a database that is down (or any other error) is logged and the
next pass follows with backoff (boatload.outage.Survivor); SIGTERM ends it between passes.
"""
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from boatload import outage, services
from boatload.auth import forget_old_nonces
from boatload.env import env_duration
from boatload.errors import BoatLoadError
from boatload.models import Host
from observe import metrics


class Command(BaseCommand):
    help = "Reconcile hosts and containers with what the satellites report, in a loop."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--interval", type=float, default=None, help="seconds between passes")

    def handle(self, *args, once, interval, **options):
        self.stopping = False
        signal.signal(signal.SIGTERM, self.on_sigterm)
        interval = interval or env_duration("BOATLOAD_RECONCILE_INTERVAL", 10)
        if once:
            self.process_one_pass()
            self.process_fleet()
            return
        survivor = outage.Survivor("reconcile")
        fleet_due = 0.0
        while not self.stopping:
            backoff = survivor.run(self.process_one_pass)
            if not backoff and time.monotonic() >= fleet_due:
                fleet_due = time.monotonic() + settings.FLEET_INTERVAL
                backoff = survivor.run(self.process_fleet)
            outage.sleep_unless(lambda: self.stopping, backoff or interval)

    def on_sigterm(self, *args):
        self.stopping = True

    def process_one_pass(self):
        with metrics.loop_pass("reconcile"):
            down = services.hosts_mark_silent_down()
            if down:
                self.stdout.write(f"marked {down} silent host(s) down")
            forget_old_nonces()
            for host in Host.objects.all():
                self.process_one_host(host)

    def process_fleet(self):
        """Collect every healthy host's container metrics (GET /stats, in parallel) for /metrics."""
        with metrics.loop_pass("fleet"):
            return metrics.collect_fleet()

    def process_one_host(self, host):
        """Reconcile one host's containers, unless another reconciler holds it; True when done."""
        if not services.host_claim(host):
            return False
        try:
            counts = services.containers_reconcile_host(host=host)
            if any(counts.values()):
                self.stdout.write(f"{host.name}: {counts}")
        except BoatLoadError as error:  # one failing host never stops the pass
            self.stderr.write(f"{host.name}: {error.message}")
        finally:
            services.host_release(host)
        return True
