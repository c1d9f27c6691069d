"""Routes of the audit log: /v1/audit/."""
from django.urls import re_path

from observe.api import AuditView

urlpatterns = [re_path(r"^$", AuditView.as_view(), name="audit-list")]
