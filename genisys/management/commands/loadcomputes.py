"""Load compute definitions from a compute_file: the Genisys Python dict format, or JSON."""
from django.core.management.base import BaseCommand, CommandError

from connectors.definitions import read_definitions_file
from genisys.api.serializers import ComputeSerializer
from genisys.models import Compute


class Command(BaseCommand):
    help = "Create or update computes from a file of {name, connector} definitions (computes.py or JSON)."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        try:
            definitions = read_definitions_file(path)
        except (OSError, ValueError, SyntaxError) as exc:
            raise CommandError(f"{path}: {exc}") from None
        for definition in definitions:
            existing = Compute.objects.filter(name=definition.get("name")).first()
            data = ComputeSerializer(existing, data=definition)
            if not data.is_valid():
                raise CommandError(f"{path}: {definition.get('name')}: {data.errors}")
            data.save()
            self.stdout.write(f"{'updated' if existing else 'created'} compute {definition['name']}")
