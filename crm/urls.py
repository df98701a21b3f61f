"""Staff page routes (config/urls_tenant.py includes them at the root)."""

from django.urls import path

from crm import audit_views, notification_views, two_factor_views, views

app_name = "crm"

urlpatterns = [
    path("contacts/", views.contact_list, name="contact-list"),
    path("contacts/pick/", views.pick_contacts, name="pick-contacts"),
    path("companies/pick/", views.pick_companies, name="pick-companies"),
    path("deals/pick/", views.pick_deals, name="pick-deals"),
    path("contacts/new/", views.contact_create, name="contact-create"),
    path("contacts/export.csv", views.contact_export, name="contact-export"),
    path("contacts/import/", views.contact_import, name="contact-import"),
    path("contacts/import/<int:pk>/", views.contact_import_status, name="contact-import-status"),
    path("contacts/<int:pk>/", views.contact_detail, name="contact-detail"),
    path("contacts/<int:pk>/edit/", views.contact_edit, name="contact-edit"),
    path("contacts/<int:pk>/notes/", views.contact_add_note, name="contact-add-note"),
    path("contacts/<int:pk>/merge/", views.contact_merge, name="contact-merge"),
    path("contacts/<int:pk>/delete/", views.contact_delete, name="contact-delete"),
    path("companies/", views.company_list, name="company-list"),
    path("companies/new/", views.company_create, name="company-create"),
    path("companies/<int:pk>/", views.company_detail, name="company-detail"),
    path("companies/<int:pk>/edit/", views.company_edit, name="company-edit"),
    path("deals/", views.deal_board, name="deal-board"),
    path("deals/new/", views.deal_create, name="deal-create"),
    path("deals/<int:pk>/", views.deal_detail, name="deal-detail"),
    path("deals/<int:pk>/edit/", views.deal_edit, name="deal-edit"),
    path("deals/<int:pk>/move/", views.deal_move, name="deal-move"),
    path("tasks/", views.task_list, name="task-list"),
    path("tasks/new/", views.task_create, name="task-create"),
    path("tasks/<int:pk>/toggle/", views.task_toggle, name="task-toggle"),
    path("settings/", views.settings_home, name="settings"),
    path("settings/team/", views.team_page, name="team"),
    path("settings/team/agents/<int:pk>/role/", views.agent_role, name="agent-role"),
    path("settings/team/agents/<int:pk>/active/", views.agent_active, name="agent-active"),
    path("settings/team/invitations/<int:pk>/resend/", views.invitation_resend, name="invitation-resend"),
    path("settings/teams/new/", views.team_edit, name="team-create"),
    path("settings/teams/<int:pk>/", views.team_edit, name="team-edit"),
    path("settings/api-keys/", views.api_keys, name="api-keys"),
    path("settings/two-factor/", two_factor_views.two_factor_settings, name="two-factor"),
    path("settings/api-keys/<int:pk>/<str:action>/", views.api_key_action, name="api-key-action"),
    path("settings/attributes/", views.attribute_definitions, name="attributes"),
    path("settings/audit-log/", audit_views.audit_log, name="audit-log"),
    path("settings/audit-log/export.csv", audit_views.audit_log_export, name="audit-log-export"),
    path("notifications/", notification_views.notification_list, name="notifications"),
    path("notifications/menu/", notification_views.notification_menu, name="notification-menu"),
    path("notifications/summary/", notification_views.notification_summary, name="notification-summary"),
    path("notifications/read-all/", notification_views.notification_read_all, name="notification-read-all"),
    path("notifications/<int:pk>/read/", notification_views.notification_read, name="notification-read"),
    path(
        "settings/notifications/",
        notification_views.notification_preferences,
        name="notification-preferences",
    ),
    path("invitations/<uidb64>/<token>/", views.InvitationAcceptView.as_view(), name="invitation-accept"),
]
