"""The reconciler loop of the API server: keeps host and container rows true to what hosts hold.

Built on boatload.loop: several may run at once, each host is claimed with a conditional
UPDATE for its step; no outage ends the loop; SIGTERM ends it between steps.
"""
import time

from django.conf import settings

from boatload import services
from boatload.auth import forget_old_nonces
from boatload.loop import ReconcilerCommand
from boatload.models import Host
from common.env import env_duration
from common.errors import BoatLoadError
from observe import history, logs, metrics


class Command(ReconcilerCommand):
    help = "Reconcile hosts and containers with what the satellites report, in a loop."
    loop_name = "reconcile"

    def interval(self):
        return env_duration("BOATLOAD_RECONCILE_INTERVAL", 10)

    def process_one_pass(self):
        down = services.hosts_mark_silent_down()
        if down:
            self.stdout.write(f"marked {down} silent host(s) down")
        forget_old_nonces()
        done = self.each(Host.objects.all(), self.process_one_host)
        if time.monotonic() >= self.fleet_due:  # every FLEET_INTERVAL, not every pass
            self.fleet_due = time.monotonic() + settings.FLEET_INTERVAL
            self.process_fleet()
        return done

    fleet_due = 0.0

    def process_fleet(self):
        """Collect each healthy host's container metrics (GET /stats, in parallel) for /metrics and the
        metrics history, so neither a scrape nor a history read fans out to the fleet; the number of
        samples."""
        with metrics.loop_pass("fleet"):
            collected = metrics.collect_fleet()
            history.maintain()  # roll up complete buckets, prune past the retentions (claimed, bulk)
            logs.prune()  # log archives past BOATLOAD_LOG_RETENTION, with their large objects
            return collected

    def process_one_host(self, host):
        """Reconcile one host's containers, unless another reconciler holds it; True when done."""
        if not services.host_claim(host):
            return False
        try:
            counts = services.containers_reconcile_host(host=host)
            if any(counts.values()):
                self.stdout.write(f"{host.name}: {counts}")
        except BoatLoadError as error:  # a host that fails is reported by name; the pass goes on
            self.stderr.write(f"{host.name}: {error.message}")
        finally:
            services.host_release(host)
        return True
