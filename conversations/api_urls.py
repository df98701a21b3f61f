"""API v1 routes of conversations and messages (mounted under /api/v1/ on tenant hosts)."""

from django.urls import path

from conversations import api, routing_api, teamops_api

urlpatterns = [
    path("conversations/", api.ConversationListView.as_view(), name="api-conversations"),
    path("conversations/<int:pk>/", api.ConversationDetailView.as_view(), name="api-conversation"),
    path(
        "conversations/<int:pk>/messages/",
        api.ConversationMessagesView.as_view(),
        name="api-conversation-messages",
    ),
    path("messages/", api.StartConversationView.as_view(), name="api-messages"),
    path("messages/<int:pk>/retry/", api.RetryMessageView.as_view(), name="api-message-retry"),
    path("whatsapp/media/", api.MediaUploadView.as_view(), name="api-whatsapp-media"),
    path("media/<int:pk>/content/", api.MediaContentView.as_view(), name="api-media-content"),
    path("settings/csat/", teamops_api.CsatSettingsView.as_view(), name="api-settings-csat"),
    path("settings/routing/", routing_api.RoutingSettingsView.as_view(), name="api-settings-routing"),
    path("settings/sla-policies/", routing_api.SlaPolicyListView.as_view(), name="api-sla-policies"),
    path("settings/sla-policies/<int:pk>/", routing_api.SlaPolicyDetailView.as_view(), name="api-sla-policy"),
    path("macros/", teamops_api.MacroListView.as_view(), name="api-macros"),
    path("macros/<int:pk>/", teamops_api.MacroDetailView.as_view(), name="api-macro"),
    path(
        "conversations/<int:pk>/macros/<int:macro_id>/run/",
        teamops_api.RunMacroView.as_view(),
        name="api-conversation-run-macro",
    ),
]
