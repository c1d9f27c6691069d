"""Request body parsers of the API server and satellites: bad bodies are 400s, never 500s.

DRF's parsers hand a view whatever JSON the body holds (a list, a string, `null`) and let
a deeply nested document raise RecursionError; both end up as 500s in views that expect an
object. These parsers refuse, in one place, what no view can use:

- a JSON body that is not an object (`[1,2]`, `"abc"`, `123`, `null`);
- JSON nested deeper than MAX_DEPTH, in a body or in a form field (multipart forms carry
  JSON-valued fields that views and DRF's JSONField decode later);
- malformed JSON, with the field named (the empty field is the body as a whole);
- a NUL character in any string or key of a JSON body, or in any form field, with its path named
  (`environment.A`): Postgres' text and jsonb can not hold one (the insert would fail: a 500), and
  what BoatLoad hands Docker (environment, labels, commands) are C strings.

A body over DATA_UPLOAD_MAX_MEMORY_SIZE raises Django's RequestDataTooBig, which the
exception handler (common.errors) answers as 413 `too_large`.
"""
import json

from django.http import Http404
from rest_framework import parsers
from rest_framework.negotiation import DefaultContentNegotiation

from common.errors import BadInput

MAX_DEPTH = 64  # Docker create bodies nest about 5 deep; Python's decoder gives up near 1000
BODY = ""  # the field name of the body as a whole


def json_problem(value, field=BODY):
    """The first thing in a decoded JSON value that no view can take, as a BadInput, or None: arrays and
    objects nested deeper than MAX_DEPTH (named by `field`), or a NUL character in a string or a key
    (named by its path below `field`). No recursion: depth is what this guards."""
    stack = [(value, 1, field)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return _nul(path)
            continue
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            return _too_deep(field)
        for key, child in children:
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return _nul(inner)
            stack.append((child, depth + 1, inner))
    return None


def _nul(path):
    return BadInput(path.replace("\x00", "\\0"), "must not contain NUL characters (\\u0000)")


def _too_deep(field):
    return BadInput(field, f"JSON nested deeper than {MAX_DEPTH} levels")


class JSONParser(parsers.JSONParser):
    """JSON bodies that must be objects: the shape every BoatLoad endpoint takes."""

    objects_only = True

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except parsers.ParseError as exc:
            raise BadInput(BODY, f"the body is not valid JSON ({exc.detail})") from None
        except RecursionError:
            raise _too_deep(BODY) from None
        problem = json_problem(data)
        if problem is not None:
            raise problem
        if self.objects_only and not isinstance(data, dict):
            raise BadInput(BODY, f"the body must be a JSON object, not {_json_type(data)}")
        return data


class AnyJSONParser(JSONParser):
    """For a view that takes any JSON value as its body (none does today)."""

    objects_only = False


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _check_fields(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _check_fields(parsed.data)
        return parsed


def _check_fields(data):
    """Form fields may hold JSON that a view or DRF's JSONField decodes later: refuse what can not decode safely."""
    for field, values in data.lists():
        for value in values:
            if not isinstance(value, str):
                continue
            if "\x00" in value or "\x00" in field:
                raise _nul(field)
            if value.lstrip()[:1] not in ("[", "{"):
                continue
            try:
                decoded = json.loads(value)
            except ValueError:
                continue  # not JSON: the view says whether that is fine for this field
            except RecursionError:
                raise _too_deep(field) from None
            problem = json_problem(decoded, field)
            if problem is not None:
                raise problem


def _json_type(value):
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


class FormatNegotiation(DefaultContentNegotiation):
    """An unknown `?format=` is a 400 naming the parameter and the formats the operation has (DRF's
    default answers a bare 404, as if the path did not exist). An unknown format suffix of a path
    (`/v1/jointoken/0.5/`) stays a 404: that path names nothing."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Http404:
            if format_suffix:
                raise
            raise BadInput("format", f"one of {', '.join(sorted({r.format for r in renderers}))}") from None
