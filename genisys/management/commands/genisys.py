"""The Genisys reconciler: every poll_interval, make each service's running match its desired size.

With a Consul host configured, services of the catalog whose names start with
service_prefix first take their desired number from the KV store. Several reconcilers may
run: each service is acted on under a row lock. One failing compute never stops a pass, and
no outage ends the loop: a database that is down (also at start, for the compute file) or
any other failing pass is logged and retried with backoff (boatload.outage.Survivor).
"""
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from boatload import outage
from genisys import services
from genisys.models import Service
from observe import metrics


class Command(BaseCommand):
    help = "Reconcile Genisys services with their computes (and Consul), every poll_interval."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true")

    def handle(self, *args, once, **options):
        self.stopping = False
        signal.signal(signal.SIGTERM, lambda *a: setattr(self, "stopping", True))
        if once:
            self.load_compute_file()
            self.process_one_pass()
            return
        survivor = outage.Survivor("genisys")
        loaded = False
        while not self.stopping:
            if not loaded:
                backoff = survivor.run(self.load_compute_file)
                loaded = not backoff
                if backoff:
                    outage.sleep_unless(lambda: self.stopping, backoff)
                    continue
            backoff = survivor.run(self.process_one_pass)
            outage.sleep_unless(lambda: self.stopping, backoff or settings.GENISYS["poll_interval"])

    def load_compute_file(self):
        if settings.GENISYS["compute_file"]:
            from django.core.management import call_command

            call_command("loadcomputes", settings.GENISYS["compute_file"])

    def process_one_pass(self):
        with metrics.loop_pass("genisys"):
            if settings.GENISYS["consul_host"]:
                self.process_consul()
            for service in Service.objects.filter(desired__isnull=False).distinct():
                self.process_one_service(service)

    def process_consul(self, registry=None):
        from genisys.consul import ConsulRegistry

        config = settings.GENISYS
        registry = registry or ConsulRegistry(config["consul_host"], config["consul_port"])
        try:
            changed = services.consul_sync(registry=registry, service_prefix=config["service_prefix"],
                                           resources_key_prefix=config["resources_key_prefix"])
        except Exception as exc:  # Consul down must not stop reconciling what we know
            self.stderr.write(f"consul: {exc}")
            return []
        for name in changed:
            self.stdout.write(f"consul: {name} has a new desired number")
        return changed

    def process_one_service(self, service):
        orders = services.service_reconcile(service=service)
        for order in orders or []:
            self.stdout.write(f"{service.name} on {order.compute}: {order.from_number} → {order.to_number} "
                              f"{order.result} {order.message}")
        return orders
