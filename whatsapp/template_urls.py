"""Settings → WhatsApp templates (config/urls_tenant.py includes them at the root)."""

from django.urls import path

from whatsapp import template_views

urlpatterns = [
    path("settings/whatsapp/templates/", template_views.template_list, name="whatsapp-templates"),
    path("settings/whatsapp/templates/new/", template_views.template_create, name="whatsapp-template-create"),
    path(
        "settings/whatsapp/templates/<int:pk>/delete/",
        template_views.template_delete,
        name="whatsapp-template-delete",
    ),
    path("settings/whatsapp/templates/sync/", template_views.template_sync, name="whatsapp-templates-sync"),
]
