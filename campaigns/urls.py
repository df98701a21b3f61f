"""Campaign pages (tenant hosts)."""

from django.urls import path

from campaigns import views

urlpatterns = [
    path("campaigns/", views.campaign_list, name="campaigns"),
    path("campaigns/settings/", views.campaign_settings, name="campaign-settings"),
    path("campaigns/new/", views.campaign_create, name="campaign-create"),
    path("campaigns/preview/", views.campaign_preview, name="campaign-preview"),
    path("campaigns/<int:pk>/", views.campaign_detail, name="campaign-detail"),
    path("campaigns/<int:pk>/export.csv", views.campaign_export, name="campaign-export"),
    path("campaigns/<int:pk>/<slug:action>/", views.campaign_action, name="campaign-action"),
]
