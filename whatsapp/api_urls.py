"""API v1 routes of the Cloud API channel (mounted under /api/v1/ on tenant hosts)."""

from django.urls import path

from whatsapp import api

urlpatterns = [
    path("whatsapp/templates/", api.TemplateListView.as_view(), name="api-whatsapp-templates"),
]
