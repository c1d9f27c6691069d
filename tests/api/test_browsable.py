"""The browsable API (DRF's HTML renderer, for a person with a browser) answers every path without a 500: it
builds a form for each method a view allows, from the view's serializer, even on an error page."""
import re

import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


def test_every_path_renders_as_html_for_staff_and_a_user(api):
    api("staff").post("/service", {"name": "x1", "image": "img"}, format="json")
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = [re.sub(r"\{[^}]+\}", "x1", path.replace("{uuid}", "00000000-0000-4000-8000-000000000001"))
             for path in schema["paths"]]
    assert len(paths) > 40
    for name in ("staff", "owner"):
        client = api(name)
        for path in paths:
            answer = client.get(path, HTTP_ACCEPT="text/html")
            assert answer.status_code < 500, (name, path, answer.status_code, answer.content[-600:])
