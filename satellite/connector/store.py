"""The satellite's store of connector service definitions: a JSON file in its state folder, written
atomically; at start-up the definitions of `SATELLITE_SERVICES_FILE` (the seed's `services.py`
format, or JSON) are merged in."""
import json
import threading
from pathlib import Path

from django.conf import settings

from connectors.definitions import DefinitionSerializer, read_definitions_file
from satellite.credentials import write_json_atomically


class DefinitionStore:
    """Definitions by name, in memory and in `services.json` of the state folder."""

    def __init__(self, path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self.loaded = False
        self.definitions = {}

    def _load(self):
        if not self.loaded:
            if self.path.exists():
                self.definitions = json.loads(self.path.read_text())
            self.loaded = True

    def _save(self):
        write_json_atomically(self.path, self.definitions, mode=0o644)

    def all(self):
        with self.lock:
            self._load()
            return dict(self.definitions)

    def get(self, name):
        with self.lock:
            self._load()
            return self.definitions.get(name)

    def put(self, definition):
        """Keep `definition`; one the store holds already is not written again (a deployment pushes its
        definition on every step)."""
        with self.lock:
            self._load()
            if self.definitions.get(definition["name"]) != definition:
                self.definitions[definition["name"]] = definition
                self._save()
        return definition

    def merge_file(self, path):
        for raw in read_definitions_file(path):
            data = DefinitionSerializer(data=raw)
            data.is_valid(raise_exception=True)
            self.put(dict(data.validated_data))


_store = None
_store_lock = threading.Lock()


def store():
    """The satellite's definition store; the services file is merged in on first use."""
    global _store
    with _store_lock:
        if _store is None:
            _store = DefinitionStore(Path(settings.STATE_DIR) / "services.json")
            if settings.SERVICES_FILE:
                _store.merge_file(settings.SERVICES_FILE)
        return _store
