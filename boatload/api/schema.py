"""OpenAPI schema: every error status an operation can answer, documented in one place.

`BoatLoadAutoSchema` (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS) adds the error responses to
each operation drf-spectacular builds, all with the one error shape of common/errors.py
(the `Error` component). What can be derived from the view is derived:

- 400 where there is input: a request body, a query parameter, or a path parameter
  the view reads beyond its lookup;
- 401 where the operation is authenticated (a security requirement), for the token views, and
  where a view checks credentials of its own (enrolment's join token);
- 403 where a permission class refuses a signed-in non-staff user for this method, where
  one checks objects on a detail route, and on unsafe methods with session authentication
  (CSRF);
- 404 on routes with path parameters;
- 406 on every operation (DRF's content negotiation), 413 and 415 where a body is taken;
- 429 where the view has throttles (and on login and refresh, which are throttled), and wherever
  API keys are accepted (an address over the wrong-key throttle is refused).

What the view can not tell (which operations call a satellite or connector, where a conflict
can happen) is the small explicit mapping below, keyed by view class and action (or method).
No view carries its own error decorators.
"""
from types import SimpleNamespace

from drf_spectacular.openapi import AutoSchema
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework_simplejwt.views import TokenViewBase

from boatload.logins.authentication import APIKeyAuthentication


class ErrorDetailSerializer(serializers.Serializer):
    """Machine-readable detail; `field` names the bad input. Other keys depend on the error."""

    field = serializers.CharField(required=False, help_text="The input at fault, e.g. `ports[0].port`.")
    remote = serializers.CharField(required=False, help_text="The host or compute that failed (5xx).")


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable code, e.g. `invalid`, `not_found`, `remote_error`.")
    message = serializers.CharField(help_text="A sentence for people.")
    detail = ErrorDetailSerializer()


class ErrorSerializer(serializers.Serializer):
    """The one error shape: `{"error": {"code", "message", "detail"}}`."""

    error = ErrorBodySerializer()

    class Meta:
        ref_name = "Error"


REASONS = {
    400: "Bad input; `detail.field` names it.",
    401: "Not authenticated, or the credentials are wrong or expired.",
    403: "Authenticated, but not allowed to do this.",
    404: "No such object (or not yours).",
    406: "None of the media types in `Accept` can be served.",
    409: "Conflict with the object's current state.",
    413: "The request body is too large.",
    415: "The request body's media type is not accepted.",
    429: "Too many requests; `Retry-After` says when to try again.",
    502: "A satellite, connector or engine failed; `detail.remote` names the host or compute.",
    503: "No healthy host or compute can take this request.",
    504: "A satellite or connector timed out; `detail.remote` names it.",
}

UPSTREAM = {502, 503, 504}

# Operations that call a satellite or a connector (view class → actions or methods).
CALLS_REMOTE = {
    "ContainerViewSet": {"create", "destroy", "raw", "start", "stop", "restart", "stdout", "script", "state",
                         "metrics", "changes", "file", "file_by_path", "filebynum", "archive", "inspect"},
    "ServiceViewSet": {"scale", "status"},
    "ServiceHookScaleView": {"post"},
    "HookTriggerView": {"post"},  # the image tag is resolved on each satellite
    "ServiceLogView": {"get"},  # a service container's output, from its satellite
}

# Operations that answer 409 when the object's state (or an existing one) is in the way.
CONFLICTS = {
    "ContainerViewSet": {"create", "raw", "destroy", "start", "stop", "restart", "stdout", "metrics", "changes",
                         "file", "file_by_path", "filebynum", "archive", "inspect", "connection"},
    "EnrolView": {"post"},
    "HostViewSet": {"rotate_key"},  # a host enrolled without a seal key can not be sent a new secret
    # A waited-for deployment that failed, rolled back or paused; an action the deployment's state refuses.
    "ServiceViewSet": {"update", "scale", "rebalance"}, "DeploymentActionView": {"post"},
    "HookTriggerView": {"post"},  # a host of the service lacks its image
}

# Operations that answer 503 when no host or compute is healthy, without calling one.
NO_HEALTHY = {"ServiceViewSet": {"rebalance"}}

# Operations a busy satellite can refuse with 429 (its fair shares of fetches, follow streams, downloads).
BUSY = {"ContainerViewSet": {"create", "stdout", "file_by_path", "filebynum", "archive"},
        "ServiceLogView": {"get"}}  # a follow stream

# Operations that check credentials of their own (a join token) rather than an authentication class.
OWN_CREDENTIALS = {"EnrolView": {"post"}}

# Throttled operations whose throttling is not (yet) visible on the view class itself.
THROTTLED = {"TokenObtainPairView": {"post"}, "TokenRefreshView": {"post"},
             "ServiceHookScaleView": {"post"}}  # a wrong secret counts against the key throttle

_NON_STAFF = SimpleNamespace(is_authenticated=True, is_staff=False, is_superuser=False, is_active=True)


class BoatLoadAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema with every error response an operation can answer."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for status_code in sorted(self.error_statuses(operation)):
            if str(status_code) not in responses:
                response = self._get_response_for_code(ErrorSerializer, str(status_code))
                response["description"] = REASONS[status_code]
                responses[str(status_code)] = response
        return operation

    def _view_key(self):
        return getattr(self.view, "action", None) or self.method.lower()

    def _mapped(self, mapping):
        names = {cls.__name__ for cls in type(self.view).__mro__}
        return any(self._view_key() in mapping.get(name, ()) for name in names)

    def error_statuses(self, operation):
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        path_params = [p["name"] for p in parameters if p["in"] == "path"]
        statuses = {406}
        if has_body or any(p["in"] == "query" for p in parameters) or set(path_params) - self._lookups(path_params):
            statuses.add(400)
        if has_body:
            statuses |= {413, 415}
        if self._is_authenticated(operation) or isinstance(self.view, TokenViewBase) or self._mapped(OWN_CREDENTIALS):
            statuses.add(401)
        if self._may_forbid(bool(path_params)):
            statuses.add(403)
        if path_params:
            statuses.add(404)
        if self._mapped(CONFLICTS):
            statuses.add(409)
        if (self.view.get_throttles() or self._mapped(THROTTLED) or self._mapped(BUSY)
                or self._accepts_api_keys()):
            statuses.add(429)
        if self._mapped(CALLS_REMOTE):
            statuses |= UPSTREAM
        if self._mapped(NO_HEALTHY):
            statuses.add(503)
        return statuses

    def _lookups(self, path_params):
        """The path parameters that only name the object (a wrong one is a 404, not a 400)."""
        lookup = getattr(self.view, "lookup_url_kwarg", None) or getattr(self.view, "lookup_field", None)
        if lookup is None:  # a plain APIView: its path names the object
            return set(path_params)
        return {lookup, "id"} if lookup == "pk" else {lookup}  # drf-spectacular writes pk as id

    def _accepts_api_keys(self):
        """An operation that takes API keys answers 429 to an address over the wrong-key throttle."""
        return any(isinstance(auth, APIKeyAuthentication) for auth in self.view.get_authenticators())

    @staticmethod
    def _is_authenticated(operation):
        return any(requirement for requirement in operation.get("security", []))

    def _may_forbid(self, detail_route):
        """True when a permission check can refuse a signed-in user here (403)."""
        request = SimpleNamespace(method=self.method, user=_NON_STAFF, auth=None)
        for permission in self.view.get_permissions():
            try:
                if not permission.has_permission(request, self.view):
                    return True
            except Exception:  # a check that needs a real request: assume it can refuse
                return True
            checks_objects = type(permission).has_object_permission is not \
                permissions.BasePermission.has_object_permission
            if detail_route and checks_objects:
                return True
        unsafe = self.method not in permissions.SAFE_METHODS
        return unsafe and any(isinstance(auth, SessionAuthentication) for auth in self.view.get_authenticators())
