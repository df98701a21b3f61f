"""The WhatsApp channel's staff pages (tenant hosts). URL names without a namespace: the onboarding
checklist links to "whatsapp-numbers"."""

from django.urls import path

from whatsapp import numbers_views

urlpatterns = [
    path("settings/whatsapp/", numbers_views.numbers_page, name="whatsapp-numbers"),
    path("settings/whatsapp/connect/", numbers_views.connect_manually, name="whatsapp-numbers-connect"),
    path(
        "settings/whatsapp/embedded-signup/",
        numbers_views.embedded_signup_complete,
        name="whatsapp-numbers-signup",
    ),
    path(
        "settings/whatsapp/<int:pk>/<slug:action>/",
        numbers_views.number_action,
        name="whatsapp-number-action",
    ),
]
