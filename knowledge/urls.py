"""Settings → AI → Knowledge (mounted at the root of a tenant's host)."""

from django.urls import path

from knowledge import views

urlpatterns = [
    path("settings/ai/knowledge/", views.knowledge_page, name="knowledge-sources"),
    path("settings/ai/knowledge/sources/", views.sources_partial, name="knowledge-sources-partial"),
    path("settings/ai/knowledge/upload/", views.upload_view, name="knowledge-upload"),
    path("settings/ai/knowledge/text/", views.text_view, name="knowledge-text"),
    path("settings/ai/knowledge/url/", views.url_view, name="knowledge-url"),
    path("settings/ai/knowledge/sources/<int:pk>/reindex/", views.reindex_view, name="knowledge-reindex"),
    path("settings/ai/knowledge/sources/<int:pk>/delete/", views.delete_view, name="knowledge-delete"),
    path("settings/ai/knowledge/faqs/", views.faq_add_view, name="knowledge-faq-add"),
    path("settings/ai/knowledge/faqs/<int:pk>/", views.faq_edit_view, name="knowledge-faq-edit"),
    path(
        "settings/ai/knowledge/faqs/<int:pk>/approve/", views.faq_approve_view, name="knowledge-faq-approve"
    ),
    path("settings/ai/knowledge/faqs/<int:pk>/delete/", views.faq_delete_view, name="knowledge-faq-delete"),
]
