"""Schemathesis hooks of tests/api/test_schema_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

`no_unexplained_server_error` stands in for schemathesis' `not_a_server_error`: a 5xx is a
failure unless it is a documented upstream failure, i.e. a 502, 503 or 504 that the
operation's schema lists, in the one error shape, whose detail names the host or compute
that failed (`remote`, `host`, `compute`, or the `host_labels` no host matched).
"""
import json

import schemathesis

UPSTREAM = {502, 503, 504}
NAMES_A_REMOTE = {"remote", "host", "compute", "host_labels"}


@schemathesis.check
def no_unexplained_server_error(ctx, response, case):
    if response.status_code < 500:
        return None
    if response.status_code not in UPSTREAM:
        raise AssertionError(f"Server error {response.status_code} (not an upstream failure)")
    documented = case.operation.definition.raw.get("responses", {})
    if str(response.status_code) not in documented:
        raise AssertionError(f"Upstream failure {response.status_code} is not documented for this operation")
    try:
        detail = json.loads(response.content)["error"]["detail"]
    except (ValueError, KeyError, TypeError):
        raise AssertionError(f"{response.status_code} without the error shape: {response.content[:200]!r}") from None
    if not isinstance(detail, dict) or not NAMES_A_REMOTE & set(detail):
        raise AssertionError(f"{response.status_code} whose error detail names no host or compute: {detail!r}")
    return None
