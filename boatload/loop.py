"""The one skeleton of BoatLoad's reconcilers (`manage.py reconcile`, `manage.py genisys`).

A loop is a management command: a SIGTERM flag checked between steps, passes made of small
`process_one_*() -> bool` steps, an interval between passes, and quick passes meanwhile for work that
must not wait that long (`quick_interval`, `process_quick_pass`). No outage ends it: each pass runs
through outage.Survivor (a database that is down is logged once and retried with backoff), and
one failing row never stops a pass (`each`). Several reconcilers may run at once: a step claims
its row with a conditional UPDATE of `claimed_until` (`claim`) and holds no lock while it calls
a satellite or a connector.
"""
import logging
import signal
import time
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db.models import Q
from django.utils import timezone

from boatload import outage
from observe import metrics

CLAIM_SECONDS = 120  # longer than any pass over one row; a reconciler that dies frees its rows by then
log = logging.getLogger("boatload.loop")


def claim(model, pk, seconds=CLAIM_SECONDS):
    """Claim one row for this reconciler; False when another one holds it (one conditional UPDATE)."""
    now = timezone.now()
    return bool(model.objects.filter(pk=pk).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
                .update(claimed_until=now + timedelta(seconds=seconds)))


def release(model, pk):
    model.objects.filter(pk=pk).update(claimed_until=None)


class ReconcilerCommand(BaseCommand):
    """Subclasses name the loop (`loop_name`), give `interval()` and `process_one_pass()`, and may
    `prepare()` once before the first pass (retried like a pass until it succeeds)."""

    loop_name = "reconcile"
    stopping = False  # set by SIGTERM (on_sigterm)

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--interval", type=float, default=None, help="seconds between passes")

    def interval(self):
        raise NotImplementedError

    def prepare(self):
        """Work before the first pass."""

    def process_one_pass(self):
        raise NotImplementedError

    def counted_pass(self):
        """One pass, counted in /metrics (passes, duration, failures by loop)."""
        with metrics.loop_pass(self.loop_name):
            return self.process_one_pass()

    def handle(self, *args, once=False, interval=None, **options):
        self.stopping = False
        signal.signal(signal.SIGTERM, self.on_sigterm)
        if once:
            self.prepare()
            self.counted_pass()
            return
        survivor = outage.Survivor(self.loop_name)
        prepared = False
        while not self.stopping:
            if not prepared:
                backoff = survivor.run(self.prepare)
                prepared = not backoff
                if backoff:
                    outage.sleep_unless(lambda: self.stopping, backoff)
                    continue
            backoff = survivor.run(self.counted_pass)
            if backoff:
                outage.sleep_unless(lambda: self.stopping, backoff)
            else:
                self.until_next_pass(survivor, interval or self.interval())

    def until_next_pass(self, survivor, seconds):
        """Wait `seconds` for the next pass; meanwhile, every quick_interval(), a quick pass (an outage in
        one ends the quick passes of this wait)."""
        due, quick = time.monotonic() + seconds, self.quick_interval()
        while quick and not self.stopping and time.monotonic() + quick < due:
            outage.sleep_unless(lambda: self.stopping, quick)
            if self.stopping or survivor.run(self.process_quick_pass):
                break
        outage.sleep_unless(lambda: self.stopping, max(0.0, due - time.monotonic()))

    def quick_interval(self):
        """Seconds between quick passes while the next pass is not due; None: no quick passes."""
        return None

    def process_quick_pass(self):
        """Work that must not wait for the next pass (the genisys loop's: the steps of active deployments)."""

    def on_sigterm(self, *args):
        self.stopping = True

    def each(self, rows, step):
        """`step(row)` for every row until SIGTERM; one that raises is logged and the pass goes on (a
        database outage ends the pass, for Survivor to wait out). How many steps did work."""
        done = 0
        for row in rows:
            if self.stopping:
                break
            try:
                done += bool(step(row))
            except outage.DATABASE_ERRORS:
                raise
            except Exception as error:  # one failing row never stops the loop
                log.exception("%s: %s failed", self.loop_name, row)
                self.stderr.write(f"{row}: {getattr(error, 'message', error)}")
        return done
