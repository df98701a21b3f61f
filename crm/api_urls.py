"""CRM routes under /api/v1/ (config/urls_tenant.py includes this)."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from crm import api, audit_api, notification_api, two_factor_api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("contacts", api.ContactViewSet, basename="contact")
router.register("companies", api.CompanyViewSet, basename="company")
router.register("tags", api.TagViewSet, basename="tag")
router.register("attribute-definitions", api.AttributeDefinitionViewSet, basename="attribute-definition")
router.register("notes", api.NoteViewSet, basename="note")
router.register("pipelines", api.PipelineViewSet, basename="pipeline")
router.register("stages", api.StageViewSet, basename="stage")
router.register("deals", api.DealViewSet, basename="deal")
router.register("tasks", api.TaskViewSet, basename="task")
router.register("agents", api.AgentViewSet, basename="agent")
router.register("teams", api.TeamViewSet, basename="team")
router.register("contact-imports", api.ContactImportViewSet, basename="contact-import")
router.register("audit-log", audit_api.AuditEventViewSet, basename="audit-event")
router.register("notifications", notification_api.NotificationViewSet, basename="notification")

urlpatterns = [
    *router.urls,
    path("settings/security/", two_factor_api.SecuritySettingsView.as_view(), name="api-settings-security"),
]
