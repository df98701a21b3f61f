"""A tenant's host: its staff pages, its admin and its API."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from config.metrics import metrics_view

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
]

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
handler403 = "config.errors.forbidden"
