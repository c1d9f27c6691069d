"""The operator console: server-rendered pages over the same rules and service functions as the API.

Every row is read through the querysets the API uses (`Container.objects.visible_to`,
`Service.objects.visible_to`), every change goes through `boatload.services` /
`genisys.services`, and staff actions are refused with 403 for anyone else, as the API's
`IsAdminUser` does. The live parts (log stream, metrics, downloads) are the API's own
endpoints, reached from the page with the session cookie: one stream, one set of rules.
"""
import base64
import json
import queue
import threading
from collections import Counter, defaultdict
from functools import wraps

from django import db
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST
from rest_framework import exceptions as drf_exceptions

from boatload import services
from boatload.models import Container, Host, JoinToken, Template
from common.errors import BoatLoadError, _first_error, html_page
from genisys import deploy
from genisys import services as genisys_services
from genisys.api.serializers import ScaleSerializer  # the API's own definition of a scale order
from genisys.models import Compute, Deployment, ScaleOrder, Service

LOGIN_URL = "console:login"
PAGE_SIZE = 25
DEPLOYMENT_FAILED = (Deployment.State.FAILED, Deployment.State.ROLLED_BACK)


def page(request, template, context, status=200):
    """A console page; with an error status it still reaches the browser as HTML (the form, its errors)."""
    return html_page(render(request, template, context, status=status))


def member(view):
    return login_required(view, login_url=LOGIN_URL)


def staff(view):
    """Staff only, as the API's IsAdminUser: anyone else gets 403, whatever they post.

    The view is marked `staff_only`, so every staff route can be found from the URL patterns (the
    tests forge a plain user's POST to each, and check no page shows a plain user a form for one)."""
    @wraps(view)
    def check(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("only staff may do this")
        return view(request, *args, **kwargs)
    checked = member(check)
    checked.staff_only = True
    return checked


def confirm(request, *, title, text, action_url, button, fields=(), cancel_url, items=()):
    """The one confirmation page of every destructive action: a plain form that posts `fields` and
    confirm=yes back to `action_url`. It works without scripts and by keyboard (no browser dialog)."""
    return render(request, "console/confirm.html", {
        "title": title, "text": text, "action_url": action_url, "button": button, "fields": fields,
        "cancel_url": cancel_url, "items": items})


def confirmed(request):
    return request.POST.get("confirm") == "yes"


def field_errors(error):
    """{form field: message} and a sentence for any error a service raised."""
    if isinstance(error, drf_exceptions.ValidationError) and isinstance(error.detail, dict):
        fields = {}
        for key, value in error.detail.items():
            path, message = _first_error({key: value})
            fields[str(key) if key != "non_field_errors" else "form"] = f"{path}: {message}" if path else message
        return fields, "Some fields need a change."
    if isinstance(error, BoatLoadError):
        field = (error.extra or {}).get("field")
        return ({field.split(".")[0].split("[")[0]: error.message} if field else {}), error.message
    message = str(getattr(error, "detail", error))
    return {}, message


# ---- dashboard ---------------------------------------------------------------------------------

def _dashboard(user, *, live):
    """The dashboard's rows; `live` adds what needs the satellites and connectors (use now, running
    per compute), asked in parallel within the cluster-read deadline. The first render of the page
    leaves them out, so it never waits on a remote; htmx asks for the live panel at once."""
    services.hosts_mark_silent_down()
    rows = Container.objects.visible_to(user)
    per_host = defaultdict(Counter)
    totals = Counter()
    for host_id, state, n in rows.values_list("host_id", "state").annotate(n=Count("id")):
        per_host[host_id][state] = n
        totals[state] = totals[state] + n
    hosts = list(Host.objects.order_by("name"))
    usage, usage_failures = services.hosts_usage(hosts=hosts) if live else ({}, [])
    unreachable = {failure["host"]: failure["message"] for failure in usage_failures}
    for host in hosts:
        host.counts = dict(per_host.get(host.pk, {}))
        host.usage = usage.get(host.name)
        host.unreachable = unreachable.get(host.name)
    visible_services = list(Service.objects.visible_to(user).order_by("name"))
    status = genisys_services.services_status(services=visible_services) if live else {}
    service_rows = []
    for service in visible_services:
        computes = status.get(service.name, {}).get("computes") or {
            d.compute.name: {"desired": d.number} for d in service.desired.select_related("compute")}
        service_rows.append({"service": service, "computes": [{"name": name, **entry}
                                                              for name, entry in sorted(computes.items())]})
    answered = [host.usage for host in hosts if host.usage]
    return {"hosts": hosts, "totals": dict(totals), "total": sum(totals.values()), "live": live,
            "fleet_cpus": sum(h.cpus for h in hosts), "fleet_memory": sum(h.memory_bytes for h in hosts),
            "fleet_cpu_now": round(sum(u["cpu_percent"] for u in answered), 2),
            "fleet_memory_now": sum(u["memory_usage"] for u in answered), "usage_failures": usage_failures,
            "active_hosts": sum(1 for h in hosts if h.state == Host.State.ACTIVE),
            "failures": last_failures(rows, visible_services), "service_rows": service_rows}


def last_failures(containers, visible_services, count=10):
    """The newest failures the user may see, of every kind in one list (newest first), each with a link
    to the page that tells more: failed creates and lost containers, failed scale orders, and deployments
    that failed or were rolled back (of the services the user may see)."""
    failed_rows = (containers.filter(state__in=(Container.State.FAILED, Container.State.LOST))
                   .select_related("host").order_by("-updated")[:count])
    failed_orders = (ScaleOrder.objects.filter(service__in=visible_services, result="failed")
                     .select_related("service", "compute").order_by("-created")[:count])
    failed_deployments = (Deployment.objects.filter(service__in=visible_services, state__in=DEPLOYMENT_FAILED)
                          .select_related("service").order_by("-updated")[:count])
    found = [{"when": row.updated, "name": row.name, "url": reverse("console:container", args=[row.uuid]),
              "what": row.state, "where": row.host.name if row.host else "—",
              "reason": row.last_error or "(no reason recorded)"} for row in failed_rows]
    found += [{"when": order.created, "name": order.service.name,
               "url": reverse("console:service", args=[order.service.name]), "what": "scale order failed",
               "where": order.compute.name if order.compute else "—", "reason": order.message}
              for order in failed_orders]
    found += [{"when": row.finished or row.updated, "name": row.service.name,
               "url": reverse("console:service", args=[row.service.name]) + "#deployment",
               "what": f"deployment {row.pk} {row.get_state_display().lower()}",
               "where": ", ".join(sorted(row.progress)) or "—",  # the computes it had reached
               "reason": f"version {row.from_version or '–'} → {row.to_version}: "
                         f"{row.reason or '(no reason recorded)'}"}
              for row in failed_deployments]
    return sorted(found, key=lambda failure: failure["when"], reverse=True)[:count]


@member
def dashboard(request):
    return render(request, "console/dashboard.html", _dashboard(request.user, live=False))


@member
def dashboard_panel(request):
    """The dashboard's body, live: htmx swaps it in on load and every few seconds (no full page reload)."""
    return render(request, "console/_dashboard_panel.html", _dashboard(request.user, live=True))


# ---- containers --------------------------------------------------------------------------------

FILTERS = ("state", "host", "image", "service", "owner")


@member
def container_list(request):
    rows = Container.objects.visible_to(request.user).select_related("host", "owner")
    chosen = {key: request.GET.get(key, "").strip() for key in (*FILTERS, "q")}
    rows = (rows.filter(state=chosen["state"]) if chosen["state"]
            else rows.exclude(state=Container.State.DELETED))
    if chosen["host"]:
        rows = rows.filter(host__name=chosen["host"])
    if chosen["image"]:
        rows = rows.filter(image_name=chosen["image"])
    if chosen["service"]:
        rows = rows.filter(service=chosen["service"])
    if chosen["owner"] and request.user.is_staff:
        rows = rows.filter(owner__username=chosen["owner"])
    if chosen["q"]:
        q = chosen["q"]
        match = Q(name__icontains=q) | Q(image_name__icontains=q) | Q(service__icontains=q)
        if all(c in "0123456789abcdef-" for c in q.lower()):
            match |= Q(uuid__istartswith=q)
        rows = rows.filter(match)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "console/containers.html", {
        "page": page, "chosen": chosen, "states": Container.State.choices, "query": query.urlencode(),
        "hosts": Host.objects.order_by("name").values_list("name", flat=True)})


@member
@require_POST
def container_bulk(request):
    """Bulk stop or delete: a confirmation page first, then the action on each row the user may reach."""
    action = request.POST.get("action")
    if action not in ("stop", "delete"):
        return page(request, "console/error.html", {"message": "action: choose stop or delete"}, status=400)
    rows = list(Container.objects.visible_to(request.user).select_related("host", "owner")
                .filter(uuid__in=[u for u in request.POST.getlist("ids") if len(u) == 36]))
    if not rows:
        messages.error(request, "Select at least one container.")
        return redirect("console:containers")
    if not confirmed(request):
        return confirm(request, title=f"{action.capitalize()} {len(rows)} container(s)?", text="",
                       items=[f"{row.name} on {row.host.name if row.host else '—'} ({row.state})" for row in rows],
                       action_url=reverse("console:containers-bulk"), button=f"Yes, {action}",
                       fields=[("action", action), *(("ids", row.uuid) for row in rows)],
                       cancel_url=reverse("console:containers"))
    outcomes = services.container_bulk(rows=rows, action=action)
    for row, error in outcomes:
        if error is not None:
            messages.error(request, f"{row.uuid}: {error.message}")
    done = sum(error is None for _, error in outcomes)
    messages.success(request, f"{action}: {done} of {len(rows)} container(s).")
    return redirect("console:containers")


def _visible_container(request, uuid):
    return get_object_or_404(Container.objects.visible_to(request.user).select_related("host", "owner"), uuid=uuid)


@member
def container_detail(request, uuid):
    row = _visible_container(request, uuid)
    context = {"row": row, "deployed": bool(row.host and row.docker_id and row.state in Container.DEPLOYED)}
    try:
        context["docker_state"] = services.container_docker_state(row=row)
    except BoatLoadError as error:
        context["docker_error"] = error.message
    if context["deployed"]:
        try:
            context["files"], cursor = services.container_files(row=row, limit=200)
            context["files_more"] = bool(cursor)
        except BoatLoadError as error:
            context["files_error"] = error.message
        try:
            context["inspect"] = services.container_inspect(row=row)
            context["inspect_json"] = json.dumps(context["inspect"], indent=2, sort_keys=True)
        except BoatLoadError as error:
            context["inspect_error"] = error.message
    return render(request, "console/container.html", context)


@member
@require_POST
def container_action(request, uuid, action):
    row = _visible_container(request, uuid)
    try:
        if action == "delete":
            if not confirmed(request):
                here = reverse("console:container", kwargs={"uuid": row.uuid})
                return confirm(request, title=f"Delete {row.name}?",
                               text=f"It is removed from {row.host.name if row.host else 'its host'}, with its "
                                    "output and files.", action_url=request.path, button=f"Yes, delete {row.name}",
                               cancel_url=here)
            services.container_delete(row=row)
            messages.success(request, f"Deleted {row.uuid}.")
            return redirect("console:containers")
        if action not in ("start", "stop", "restart"):
            return page(request, "console/error.html", {"message": "action: unknown"}, status=400)
        state = services.container_action(row=row, action=action)
        messages.success(request, f"{action}: the container is {state.get('Status')}.")
    except BoatLoadError as error:
        messages.error(request, error.message)
    return redirect("console:container", uuid=row.uuid)


# ---- create ------------------------------------------------------------------------------------

def _lines(text):
    """(number, stripped line) of every line of a textarea that is not blank."""
    return [(number, raw.strip()) for number, raw in enumerate(text.splitlines(), 1) if raw.strip()]


def _pairs(text, field):
    """KEY=VALUE lines as a dict; a line without '=' is an error naming the field."""
    out = {}
    for number, line in _lines(text):
        if "=" not in line:
            raise drf_exceptions.ValidationError({field: [f"line {number}: KEY=VALUE"]})
        key, _, value = line.partition("=")
        out[key.strip()] = value
    return out


def _ports(text):
    """Lines of `port[/tcp|/udp] [scope]`, as the API's port objects (the API checks them)."""
    ports = []
    for _, line in _lines(text):
        words = line.split()
        port, _, protocol = words[0].partition("/")
        entry = {"port": int(port) if port.isascii() and port.isdigit() else port, "protocol": (protocol or "tcp")}
        if len(words) > 1:
            entry["scope"] = words[1]
        ports.append(entry)
    return ports


def _volumes(text):
    """Lines of `/target` (temp), or `/source:/target[:ro]` (a host path: staff only)."""
    volumes = []
    for _, line in _lines(text):
        parts = line.split(":")
        read_only = parts[-1] == "ro"
        parts = parts[:-1] if read_only else parts
        if len(parts) == 1:
            volumes.append({"type": "temp", "target": parts[0], "read_only": read_only})
        else:
            volumes.append({"type": "host", "source": parts[0], "target": parts[-1], "read_only": read_only})
    return volumes


TEXT_FIELDS = ("image_name", "image_tag", "name", "command", "container_args", "scripturl", "scriptname", "dataurl",
               "datapath", "memory", "cpus", "restart", "instances", "template", "host")


def create_fields(post, files):
    """The console's form as the API's create request (the same dict POST /v1/container/ takes)."""
    fields = {key: post[key].strip() for key in TEXT_FIELDS if post.get(key, "").strip()}
    upload = files.get("script_file")
    if upload is not None:
        data = upload.read(settings.SCRIPT_MAX_BYTES + 1)
        fields["script"] = base64.b64encode(data).decode()
        fields.setdefault("scriptname", upload.name or "script")
    elif post.get("script", "").strip():
        fields["script"] = base64.b64encode(post["script"].replace("\r\n", "\n").encode()).decode()
    for key in ("env", "labels", "host_labels"):
        if post.get(key, "").strip():
            fields[key] = _pairs(post[key], key)
    if post.get("ports", "").strip():
        fields["ports"] = _ports(post["ports"])
    if post.get("volumes", "").strip():
        fields["volumes"] = _volumes(post["volumes"])
    if post.get("privileged"):
        fields["privileged"] = True
    return fields


def _create_context(request, **extra):
    return {"templates": list(Template.objects.order_by("name").values_list("name", flat=True)),
            "hosts": list(Host.objects.filter(state=Host.State.ACTIVE).order_by("name").values_list("name", flat=True)),
            "restarts": ["permanent"],
            "values": request.POST if request.method == "POST" else {"image_tag": "latest"}, **extra}


@member
def container_create(request):
    if request.method != "POST":
        return render(request, "console/create.html", _create_context(request))
    try:
        fields = create_fields(request.POST, request.FILES)
        placement, spec, rows = services.container_create_checked(user=request.user, fields=fields)
    except (BoatLoadError, drf_exceptions.APIException) as error:
        errors, message = field_errors(error)
        status = getattr(error, "status_code", 400)
        return page(request, "console/create.html", _create_context(request, errors=errors, message=message),
                    status=status)
    if "instances" not in placement:
        # Read to its end, so the request's audit entry gets the outcome, as the API's create does.
        [(row, error)] = services.container_create_each(rows, spec, as_staff=request.user.is_staff)
        if error is not None:
            messages.error(request, f"The create failed on {row.host.name}: {error.message}")
        return redirect("console:container", uuid=row.uuid)
    outcomes = _create_apart(rows, spec, as_staff=request.user.is_staff)
    return StreamingHttpResponse(_progress(request, rows, outcomes), content_type="text/html; charset=utf-8")


def _create_apart(rows, spec, *, as_staff):
    """The creates of a many-instance request in a thread of their own (a greenlet under gunicorn's gevent
    workers), yielding each outcome as it is recorded. The page only reads them: should the browser leave
    (the response is closed), the batch still records every outcome and completes its audit entry."""
    outcomes = queue.Queue()

    def run():
        try:
            for outcome in services.container_create_each(rows, spec, as_staff=as_staff):
                outcomes.put(outcome)
        finally:
            outcomes.put(None)
            db.connections.close_all()  # this thread's own connection

    threading.Thread(target=run, name="create-batch", daemon=True).start()
    while (outcome := outcomes.get()) is not None:
        yield outcome


def _progress(request, rows, outcomes):
    """The page of a many-instance create, each result written as it arrives (no script needed)."""
    yield render_to_string("console/progress_head.html", {"rows": rows}, request=request)
    failed = 0
    for done, (row, error) in enumerate(outcomes, 1):
        failed += error is not None
        yield render_to_string("console/progress_item.html",
                               {"row": row, "error": error, "done": done, "total": len(rows)})
    yield render_to_string("console/progress_tail.html",
                           {"created": len(rows) - failed, "failed": failed, "total": len(rows)}, request=request)


# ---- services ----------------------------------------------------------------------------------

@member
def service_list(request):
    rows = Service.objects.visible_to(request.user).select_related("owner").prefetch_related("desired__compute")
    return render(request, "console/services.html", {"services": rows})


@member
def service_detail(request, name):
    service = get_object_or_404(Service.objects.visible_to(request.user).select_related("owner"), name=name)
    computes = Compute.objects.visible_to(request.user).order_by("name").values_list("name", flat=True)
    context = {"service": service, "compute_choices": [("*", "all (spread)"), *((c, c) for c in computes)],
               "orders": service.orders.select_related("compute", "requested_by")[:50]}
    context["deployment"] = service.deployments.select_related("started_by").first()  # the latest (-id)
    context["deployment_controls"] = deployment_controls(context["deployment"])
    if request.method == "POST":
        number = request.POST.get("number", "").strip()
        compute = request.POST.get("compute", "").strip() or None
        try:
            data = ScaleSerializer(data={"number": number, **({"compute": compute} if compute else {})})
            data.is_valid(raise_exception=True)
            result, _ = deploy.scale_deployed(service=service, user=request.user, **data.validated_data)
            messages.success(request, f"Scaled {service.name} to {result['number']}.")
            return redirect("console:service", name=service.name)
        except (BoatLoadError, drf_exceptions.APIException) as error:
            context["errors"], context["message"] = field_errors(error)
            context["values"] = request.POST
            status = getattr(error, "status_code", 400)
    else:
        status = 200
    try:
        context["status"] = genisys_services.service_status(service=service)
    except BoatLoadError as error:
        context["status"] = (error.extra or {}).get("status")
        context["status_error"] = error.message
    return page(request, "console/service.html", context, status=status)


@member
def service_deployment(request, name):
    """The service page's deployment section, alone: htmx swaps it in every few seconds while it is active."""
    service = get_object_or_404(Service.objects.visible_to(request.user), name=name)
    deployment = service.deployments.select_related("started_by").first()
    return render(request, "console/_service_deployment.html", {
        "service": service, "deployment": deployment, "deployment_controls": deployment_controls(deployment)})


DEPLOYMENT_ACTIONS = {"pause": deploy.deployment_pause, "resume": deploy.deployment_resume,
                      "rollback": deploy.deployment_rollback}  # the API's (genisys/api/deployments.py)


def deployment_controls(deployment):
    """The controls a service page offers for its latest deployment, as genisys.deploy would take them."""
    if deployment is None:
        return []
    controls = {Deployment.State.RUNNING: [] if deploy.swarm_rolled(deployment) else ["pause"],  # Swarm's can't
                Deployment.State.PAUSED: ["resume"]}.get(deployment.state, [])
    can_roll_back = (not deployment.rolling_back and deployment.state != Deployment.State.ROLLED_BACK
                     and deployment.state != Deployment.State.SUCCEEDED
                     and deployment.from_version not in (None, deployment.to_version))
    return controls + (["rollback"] if can_roll_back else [])


@member
@require_POST
def deployment_action(request, name, id, action):
    """Pause, resume or roll back a deployment of a service the user may see (the API's rules: genisys.deploy
    refuses what its state does not allow, 409 there, a message here). Rolling back asks first."""
    service = get_object_or_404(Service.objects.visible_to(request.user), name=name)
    deployment = get_object_or_404(service.deployments, pk=id)
    here = reverse("console:service", args=[service.name])
    if action not in DEPLOYMENT_ACTIONS:
        return page(request, "console/error.html", {"message": "action: choose pause, resume or rollback"}, status=400)
    if action == "rollback" and not confirmed(request):
        return confirm(request, title=f"Roll back deployment {deployment.pk} of {service.name}?",
                       text=f"The service's definition returns to version {deployment.from_version} and its "
                            "containers are replaced with it, health-gated, as the update policy says.",
                       action_url=request.path, button=f"Yes, roll back to version {deployment.from_version}",
                       cancel_url=here)
    try:
        row = DEPLOYMENT_ACTIONS[action](deployment=deployment)
        messages.success(request, f"{action}: deployment {row.pk} is {row.get_state_display().lower()}.")
    except BoatLoadError as error:
        messages.error(request, error.message)
    return redirect(here + "#deployment")


# ---- hosts -------------------------------------------------------------------------------------

@member
def host_list(request):
    services.hosts_mark_silent_down()
    return render(request, "console/hosts.html", {"hosts": Host.objects.order_by("name")})


@staff
@require_POST
def jointoken_create(request):
    row, token = JoinToken.issue(user=request.user, ttl=None, note=request.POST.get("note", "")[:200])
    return render(request, "console/jointoken.html", {
        "row": row, "token": token, "command": services.satellite_join_command(token),
        "command_venv": services.satellite_join_command_venv(token)})


HOST_ACTIONS = {
    "drain": lambda host: host.drain(),
    "rotate-key": lambda host: services.host_rotate_key(host=host),
    "unregister": lambda host: services.host_unregister(host=host),
}
# What each host action's confirmation page says: every one of them asks first (nothing changes before
# confirm=yes), as deleting does.
HOST_CONFIRMATIONS = {
    "drain": ("Drain {name}?", "No new container is placed on it; what runs there keeps running.",
              "Yes, drain {name}"),
    "rotate-key": ("Rotate the key of {name}?", "Its satellite is handed a new signing key with its next "
                   "heartbeat, sealed to its seal key.", "Yes, rotate the key of {name}"),
    "unregister": ("Unregister {name}?", "Its keys stop working at once and its containers are marked lost.",
                   "Yes, unregister {name}"),
}


@staff
@require_POST
def host_action(request, name, action):
    host = get_object_or_404(Host, name=name)
    if action not in HOST_ACTIONS:
        return page(request, "console/error.html", {"message": "action: unknown"}, status=400)
    if not confirmed(request):
        title, text, button = (part.format(name=host.name) for part in HOST_CONFIRMATIONS[action])
        return confirm(request, title=title, text=text, action_url=request.path, button=button,
                       cancel_url=reverse("console:hosts"))
    try:
        HOST_ACTIONS[action](host)
        messages.success(request, f"{action}: {name} done.")
    except BoatLoadError as error:
        messages.error(request, error.message)
    return redirect(reverse("console:hosts"))


host_action.actions = tuple(HOST_ACTIONS)  # the values of its <action>, for whoever lists staff routes
