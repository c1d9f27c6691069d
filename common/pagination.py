"""The one pagination of every listing: cursors (`limit`, `cursor`, `next`), never offsets.

`CursorPage` is DRF's CursorPagination with BoatLoad's rules:

- `limit` defaults to REST_FRAMEWORK's PAGE_SIZE (100) and may be at most `max_page_size` (1000);
  anything else (not an integer, below 1, above the maximum) is a 400 naming `limit`, as is a
  cursor this API did not give (`cursor`) and an `offset` (the old paging, which a cursor
  replaced: ignoring it would hand a client the first page forever).
- The position is a key of the ordering, not an offset, so rows inserted while a client pages
  neither repeat nor hide rows it has not seen yet.
- `count` only with `?count=true`: one COUNT(*) when asked, none otherwise.

The ordering is the view's `ordering`, else the model's Meta ordering (the first field is the
position, a unique or nearly unique one; ties are told apart by DRF's offset within a position).

A view whose answer is a plain list (kept so for its clients) uses `CursorPageInHeaders`: the body
stays the list, the next page's URL goes in `Link` (rel="next") and its cursor in `X-Next-Cursor`
(like a container's changes and files), the count in `X-Total-Count`.

Lists that are not querysets (what every host answered to a cluster-wide read) are paged by
`paginate_items` with the same parameters, by a key of each item.
"""
import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ValidationError
from rest_framework import pagination
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from common.errors import BadInput

MAX_LIMIT = 1000
BOOLEAN = {"true": True, "1": True, "false": False, "0": False}


def _limit(request, default, maximum):
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise BadInput("limit", "must be an integer") from None
    if not 1 <= limit <= maximum:
        raise BadInput("limit", f"must be between 1 and {maximum}")
    return limit


def count_asked(request):
    """True for ?count=true (or 1); 400 naming `count` for anything but a boolean."""
    raw = request.query_params.get("count")
    if raw is None or raw == "":
        return False
    if raw.lower() not in BOOLEAN:
        raise BadInput("count", "must be true or false")
    return BOOLEAN[raw.lower()]


def _refuse_offset(request):
    if "offset" in request.query_params:
        raise BadInput("offset", "pages are cursors: follow `next` (or pass its `cursor`) instead of an offset")


class CursorPage(pagination.CursorPagination):
    """Cursor pages for every listing (REST_FRAMEWORK's DEFAULT_PAGINATION_CLASS)."""

    page_size_query_param = "limit"
    max_page_size = MAX_LIMIT
    page_size_query_description = f"Items in a page (default 100, at most {MAX_LIMIT})."
    cursor_query_description = "`next` (or `previous`) of the last page gives the cursor of the next one."
    ordering = None  # a subclass may fix one; else the view's, else the model's
    count = None

    def paginate_queryset(self, queryset, request, view=None):
        _refuse_offset(request)
        self.view = view
        self.count = queryset.count() if count_asked(request) else None
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValidationError, ValueError, TypeError):  # a position that is no value of the ordering's field
            raise BadInput("cursor", "not a cursor this API gave") from None

    def get_page_size(self, request):
        return _limit(request, self.page_size, self.max_page_size)

    def get_ordering(self, request, queryset, view):
        ordering = getattr(view, "ordering", None) or self.ordering or queryset.model._meta.ordering or "-pk"
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except (NotFound, UnicodeError):  # not base64, not ASCII inside, or no numbers where they belong
            raise BadInput("cursor", "not a cursor this API gave") from None
        if cursor is not None and cursor.position is None and not cursor.offset and not cursor.reverse:
            raise BadInput("cursor", "not a cursor this API gave")  # every cursor we give says where it is
        return cursor

    def get_paginated_response(self, data):
        body = {"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data}
        if self.count is not None:
            body["count"] = self.count
        return Response(body)

    def get_paginated_response_schema(self, schema):
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["count"] = {"type": "integer", "description": "All matching items; only with "
                                         "`?count=true`."}
        return answer

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return [*parameters, COUNT_PARAMETER]

    # ---- lists that are not querysets ------------------------------------------------------------

    def paginate_items(self, items, request, *, key):
        """A page of `items` (dicts) in the order of `key(item)` (a tuple of strings), after the cursor's
        key; returns (page, next URL or None, count or None)."""
        _refuse_offset(request)
        limit = _limit(request, self.page_size, self.max_page_size)
        count = len(items) if count_asked(request) else None
        ordered = sorted(items, key=key)
        raw = request.query_params.get("cursor")
        if raw:
            after = _items_cursor(raw)
            ordered = [item for item in ordered if list(key(item)) > after]
        page = ordered[:limit]
        following = None
        if len(ordered) > limit:
            encoded = urlsafe_b64encode(json.dumps(list(key(page[-1]))).encode()).decode()
            following = replace_query_param(request.build_absolute_uri(), "cursor", encoded)
        return page, following, count


class CursorPageInHeaders(CursorPage):
    """The same pages for an answer that stays a plain list: the next page in Link and X-Next-Cursor,
    the count (when asked) in X-Total-Count."""

    def get_paginated_response(self, data):
        return _in_headers(Response(data), self.get_next_link(), self.count)

    def get_paginated_response_schema(self, schema):
        return schema


def _items_cursor(raw):
    try:
        after = json.loads(urlsafe_b64decode(raw.encode("ascii")))
    except (ValueError, UnicodeError):
        raise BadInput("cursor", "not a cursor this API gave") from None
    if not isinstance(after, list) or not all(isinstance(part, str) for part in after):
        raise BadInput("cursor", "not a cursor this API gave")
    return after


def _in_headers(response, following, count):
    if following:
        response["Link"] = f'<{following}>; rel="next"'
        response["X-Next-Cursor"] = parse_qs(urlsplit(following).query)["cursor"][0]
    if count is not None:
        response["X-Total-Count"] = str(count)
    return response


COUNT_PARAMETER = {"name": "count", "required": False, "in": "query", "schema": {"type": "boolean"},
                   "description": "Also answer how many items match in all (one COUNT; off by default)."}
