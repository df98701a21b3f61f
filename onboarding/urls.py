"""On a tenant's host (included by config.urls_tenant): the one-time sign-in after signup and the
checklist's dismissal."""

from django.urls import path

from onboarding import views

urlpatterns = [
    path("welcome/<str:token>/", views.welcome, name="signup-welcome"),
    path("onboarding/checklist/dismiss/", views.dismiss_checklist, name="checklist-dismiss"),
]
