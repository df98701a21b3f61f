"""API v1 routes of the Cloud API channel (mounted under /api/v1/ on tenant hosts)."""

from django.urls import path

from whatsapp import api

urlpatterns = [
    path("whatsapp/channels/", api.ChannelListView.as_view(), name="api-whatsapp-channels"),
    path("whatsapp/templates/", api.TemplateListView.as_view(), name="api-whatsapp-templates"),
    path("whatsapp/templates/<int:pk>/", api.TemplateDetailView.as_view(), name="api-whatsapp-template"),
]
