"""API v1 routes of campaigns (mounted under /api/v1/ on tenant hosts)."""

from django.urls import path

from campaigns import api

urlpatterns = [
    path("campaigns/", api.CampaignListView.as_view(), name="api-campaigns"),
    path("campaigns/<int:pk>/", api.CampaignDetailView.as_view(), name="api-campaign"),
    path("campaigns/<int:pk>/start/", api.CampaignStartView.as_view(), name="api-campaign-start"),
    path("campaigns/<int:pk>/pause/", api.CampaignPauseView.as_view(), name="api-campaign-pause"),
    path("campaigns/<int:pk>/resume/", api.CampaignResumeView.as_view(), name="api-campaign-resume"),
    path("campaigns/<int:pk>/cancel/", api.CampaignCancelView.as_view(), name="api-campaign-cancel"),
]
