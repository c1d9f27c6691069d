"""The Genisys reconciler: every poll_interval, make each service's running match its desired size.

With a Consul host configured, services of the catalog whose names start with
service_prefix first take their desired number from the KV store. Built on boatload.loop:
several reconcilers may run, each service is claimed with a conditional UPDATE for its step
and no lock is held while a connector is asked; one failing compute or service never stops a
pass, and no outage ends the loop (a database that is down, also at start for the compute
file, is retried with backoff). With GENISYS_REBALANCE_ON_JOIN, a spread service that a newly
healthy compute holds none of, or a service on a Swarm compute one of whose nodes runs none of its tasks
while another runs two or more, is rebalanced (genisys.deploy.rebalance_if_joined). Between the passes,
every GENISYS_DEPLOY_INTERVAL, each running deployment is stepped on its own (a quick pass).
"""
from django.conf import settings
from django.core.management import call_command

from boatload.loop import ReconcilerCommand
from genisys import config, deploy, services
from genisys.consul import ConsulRegistry
from genisys.models import Deployment, Service


class Command(ReconcilerCommand):
    help = "Reconcile Genisys services with their computes (and Consul), every poll_interval."
    loop_name = "genisys"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.said = {}  # deployment id: (state, reason) last written to stdout

    def interval(self):
        return config.current()["poll_interval"]

    def prepare(self):
        self.load_compute_file()

    def quick_interval(self):
        return settings.GENISYS_DEPLOY_INTERVAL or None

    def process_quick_pass(self):
        """A step of every running deployment, between the passes: a rollout's batches, its pickup and its end
        wait for this interval, not for the poll interval (15 s by default)."""
        running = Service.objects.filter(deployments__state=Deployment.State.RUNNING).distinct()
        return self.each(running, self.process_one_deployment)

    def load_compute_file(self):
        compute_file = config.current()["compute_file"]
        if compute_file:
            # A missing file is a warning (the original Genisys loads an empty set); a malformed one stops.
            call_command("loadcomputes", compute_file, if_exists=True, stderr=self.stderr)

    def process_one_pass(self):
        if config.current()["consul_host"]:
            self.process_consul()
        return self.each(Service.objects.filter(desired__isnull=False).distinct(), self.process_one_service)

    def process_consul(self, registry=None):
        known = config.current()
        registry = registry or ConsulRegistry(known["consul_host"], known["consul_port"])
        try:
            changed = services.consul_sync(registry=registry, service_prefix=known["service_prefix"],
                                           resources_key_prefix=known["resources_key_prefix"])
        except Exception as exc:  # Consul down must not stop reconciling what we know
            self.stderr.write(f"consul: {exc}")
            return []
        for name in changed:
            self.stdout.write(f"consul: {name} has a new desired number")
        return changed

    def process_one_service(self, service):
        active = deploy.deployment_active(service)
        if active is None and settings.GENISYS_REBALANCE_ON_JOIN:
            active = deploy.rebalance_if_joined(service)
            if active is not None:
                self.stdout.write(f"{service.name}: rebalance {active.pk} started: {active.reason}")
        if active is not None and active.kind == "definition":  # the deployment rolls it, health-gated
            return self.process_one_deployment(service)
        orders = services.service_reconcile(service=service)
        if active is not None:  # a scale's deployment: it watches the slots the reconcile made become healthy
            self.process_one_deployment(service)
        for order in orders or []:
            self.stdout.write(f"{service.name} on {order.compute}: {order.from_number} → {order.to_number} "
                              f"{order.result} {order.message}")
        return orders

    def process_one_deployment(self, service):
        deployment = deploy.service_deploy_step(service=service)
        if deployment is not None and self.said.get(deployment.pk) != (deployment.state, deployment.reason):
            if len(self.said) >= 10_000:  # ones another reconciler ended, or paused for long
                self.said.clear()
            self.said[deployment.pk] = (deployment.state, deployment.reason)  # said once, not every step
            self.stdout.write(f"{service.name}: deployment {deployment.pk} {deployment.state} {deployment.reason}")
            if deployment.terminal:
                self.said.pop(deployment.pk)
        return deployment
