"""Versions and deployments of a service: /service/<name>/versions, /service/<name>/deployments[/<id>]
and pause/resume/rollback (genisys/deploy.py does the work)."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from genisys import deploy
from genisys.api.views import ServiceView
from genisys.api.waiting import WAIT, DeploymentSerializer, VersionSerializer, answer, wait_of
from observe import audit


class ServiceVersionsView(ServiceView):
    @extend_schema(responses=VersionSerializer(many=True))
    def get(self, request, name):
        """The kept versions of a service definition, newest first (GENISYS_VERSION_HISTORY of them)."""
        service = self.get_object()
        return Response(VersionSerializer(service.versions.select_related("created_by", "service"), many=True).data)


class DeploymentView(ServiceView):
    def deployment(self, id):
        return get_object_or_404(self.get_object().deployments.select_related("service", "started_by"), pk=id)


class DeploymentListView(DeploymentView):
    @extend_schema(responses=DeploymentSerializer(many=True))
    def get(self, request, name):
        """The deployments of a service, newest first (the last 100)."""
        rows = self.get_object().deployments.select_related("service", "started_by")[:100]
        return Response(DeploymentSerializer(rows, many=True, context={"request": request}).data)


class DeploymentDetailView(DeploymentView):
    @extend_schema(responses=DeploymentSerializer)
    def get(self, request, name, id):
        return Response(DeploymentSerializer(self.deployment(id), context={"request": request}).data)


ACTIONS = {"pause": deploy.deployment_pause, "resume": deploy.deployment_resume,
           "rollback": deploy.deployment_rollback}
SUCCESS = {"pause": "paused", "resume": "succeeded", "rollback": "rolled_back"}  # the end each one asks for


class DeploymentActionView(DeploymentView):
    @extend_schema(request=None, parameters=[WAIT], responses={200: DeploymentSerializer, 202: DeploymentSerializer})
    def post(self, request, name, id, action):
        """pause: no new batch starts (409 once Swarm rolls it: Swarm's update can not be paused). resume: go on.
        rollback: back to from_version, health-gated."""
        wait = wait_of(request)
        with audit.change(f"deployment.{action}", target=f"{name}#{id}"):  # its entry in the change's transaction
            row = ACTIONS[action](deployment=self.deployment(id))
        return answer(request, None, row, wait, success=SUCCESS[action])
