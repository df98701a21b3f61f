"""API v1 routes of the AI agent (mounted under /api/v1/ on tenant hosts)."""

from django.urls import path

from knowledge import ai_api

urlpatterns = [
    path("ai/settings/", ai_api.AISettingsView.as_view(), name="api-ai-settings"),
    path("ai/conversations/<int:pk>/copilot/", ai_api.CopilotView.as_view(), name="api-ai-copilot"),
    path(
        "ai/conversations/<int:pk>/faq-suggestions/",
        ai_api.SuggestFaqView.as_view(),
        name="api-ai-faq-suggestion",
    ),
]
