"""Signup, on the public host (included by config.urls_public)."""

from django.urls import path

from onboarding import views

urlpatterns = [
    path("signup/", views.signup_page, name="signup"),
    path("signup/sent/", views.signup_sent, name="signup-sent"),
    path("signup/check/", views.subdomain_check, name="signup-check"),
    path("signup/verify/<str:token>/", views.signup_verify, name="signup-verify"),
]
