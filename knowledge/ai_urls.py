"""Settings → AI and the inbox's AI endpoints (mounted at the root of a tenant's host)."""

from django.urls import path

from knowledge import ai_views

urlpatterns = [
    path("settings/ai/", ai_views.settings_page, name="ai-settings"),
    path("ai/c/<int:pk>/copilot/", ai_views.copilot_view, name="ai-copilot"),
    path("ai/c/<int:pk>/faq/", ai_views.suggest_faq_view, name="ai-faq-suggestion"),
]
