"""The WAHA channel's staff pages (tenant hosts), beside Settings → WhatsApp numbers."""

from django.urls import path

from waha import views

urlpatterns = [
    path("settings/whatsapp/waha/", views.link_page, name="waha-link"),
    path("settings/whatsapp/waha/<int:pk>/", views.session_page, name="waha-session"),
    path("settings/whatsapp/waha/<int:pk>/live/", views.session_live, name="waha-session-live"),
    path("settings/whatsapp/waha/<int:pk>/<slug:action>/", views.session_action, name="waha-session-action"),
]
