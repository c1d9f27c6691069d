"""Load compute definitions from a compute_file: the Genisys Python dict format, or JSON."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from connectors.definitions import read_definitions_lines
from genisys.api.serializers import ComputeSerializer
from genisys.models import Compute


class Command(BaseCommand):
    help = "Create or update computes from a file of {name, connector} definitions (computes.py or JSON)."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--if-exists", action="store_true",
                            help="a missing file is a warning and loads nothing (the compute_file of genisys.yml)")

    def handle(self, *args, path, if_exists=False, **options):
        if if_exists and not Path(path).exists():
            self.stderr.write(f"warning: compute file {path} does not exist: no compute loaded from it")
            return
        try:
            definitions = read_definitions_lines(path)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc) if isinstance(exc, ValueError) else f"{path}: {exc}") from None
        with transaction.atomic():  # one bad definition loads none of the file
            self.load(path, definitions)

    def load(self, path, definitions):
        for line, definition in definitions:
            existing = Compute.objects.filter(name=definition.get("name")).first()
            data = ComputeSerializer(existing, data=definition)
            if not data.is_valid():
                where = f"{path}, line {line}" if line else path
                field, errors = next(iter(data.errors.items()))
                raise CommandError(f"{where}: {definition.get('name')}: {field}: {' '.join(map(str, errors))}")
            data.save()
            self.stdout.write(f"{'updated' if existing else 'created'} compute {definition['name']}")
