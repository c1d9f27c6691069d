"""Load container templates from JSON files (default: the templates/ folder) into the database."""
import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from boatload.api.serializers import TemplateSerializer
from boatload.models import Template
from common.errors import _first_error


class Command(BaseCommand):
    help = "Create or update templates from JSON files: {name, description, body (Docker create JSON)}."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", help="files or folders (default: templates/)")

    def handle(self, *args, paths, **options):
        files = []
        for path in map(Path, paths or [settings.BASE_DIR / "templates"]):
            files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
        for file in files:
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"{file}: {exc}") from None
            data.setdefault("name", file.stem)
            existing = Template.objects.filter(name=data["name"]).first()
            serializer = TemplateSerializer(existing, data=data)
            if not serializer.is_valid():
                field, message = _first_error(serializer.errors)
                raise CommandError(f"{file}: invalid template: {field}: {message}")
            serializer.save()
            self.stdout.write(f"{'updated' if existing else 'created'} template {data['name']}")
