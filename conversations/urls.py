"""Inbox, reports and the inbox settings, mounted at the root of a tenant's host (config/urls_tenant.py)."""

from django.urls import path, re_path

from conversations import cost_views, export_views, routing_views, settings_views, teamops_views, views

app_name = "inbox"

urlpatterns = [
    path("inbox/", views.inbox_page, name="inbox"),
    path("inbox/list/", views.conversation_list, name="list"),
    path("inbox/counts/", views.tab_counts, name="counts"),
    path("inbox/canned/", views.canned_list, name="canned"),
    path("inbox/mentions/", teamops_views.mention_picker, name="mentions"),
    path("inbox/c/<int:pk>/", views.conversation_page, name="conversation"),
    path("inbox/c/<int:pk>/row/", views.conversation_row, name="row"),
    path("inbox/c/<int:pk>/head/", views.thread_head, name="head"),
    re_path(r"^inbox/c/(?P<pk>[0-9]+)/menu/(?P<menu>assign|tags)/$", views.thread_menu, name="menu"),
    path("inbox/c/<int:pk>/messages/", views.thread_messages, name="messages"),
    path("inbox/c/<int:pk>/contact/", views.contact_panel, name="contact"),
    path("inbox/c/<int:pk>/contact/field/<str:field>/", views.contact_field, name="contact_field"),
    path("inbox/c/<int:pk>/contact/tags/", views.contact_tag_add, name="contact_tag_add"),
    path(
        "inbox/c/<int:pk>/contact/tags/<int:tag>/remove/",
        views.contact_tag_remove,
        name="contact_tag_remove",
    ),
    path("inbox/c/<int:pk>/contact/notes/", views.contact_note_add, name="contact_note_add"),
    path("inbox/c/<int:pk>/assign/", views.assign, name="assign"),
    path("inbox/c/<int:pk>/take/", views.take, name="take"),
    path("inbox/c/<int:pk>/status/", views.set_status, name="status"),
    path("inbox/c/<int:pk>/snooze/", views.snooze, name="snooze"),
    path("inbox/c/<int:pk>/tags/", views.set_tags, name="tags"),
    path("inbox/c/<int:pk>/unread/", views.mark_unread, name="unread"),
    path("inbox/c/<int:pk>/bot/", views.bot, name="bot"),
    path("inbox/c/<int:pk>/note/", views.add_note, name="note"),
    path("inbox/c/<int:pk>/send/", views.send, name="send"),
    path("inbox/c/<int:pk>/templates/", views.template_picker, name="templates"),
    path("inbox/c/<int:pk>/template/", views.send_template, name="send_template"),
    # Starting a conversation from a contact ("Message" on the contact pages).
    path("inbox/start/<int:contact>/", views.start_page, name="start"),
    path("inbox/start/<int:contact>/<int:channel>/templates/", views.start_templates, name="start-templates"),
    path("inbox/start/<int:contact>/<int:channel>/send/", views.start_send, name="start-send"),
    path("inbox/m/<int:pk>/", views.message_fragment, name="message"),
    path("inbox/m/<int:pk>/retry/", views.retry, name="retry"),
    path("inbox/c/<int:pk>/read/", views.mark_read, name="read"),
    path("inbox/c/<int:pk>/typing/", views.typing, name="typing"),
    path("inbox/media/<int:pk>/", views.media_file, name="media"),
    path("inbox/media/<int:pk>/retry/", views.media_retry, name="media_retry"),
    path("reports/", views.reports_page, name="reports"),
    # Message costs (owners): conversations/cost_views.py.
    path("reports/costs/", cost_views.cost_report, name="costs"),
    path("reports/costs/c/<int:pk>/", cost_views.conversation_costs, name="conversation-costs"),
    path("settings/billing/", cost_views.billing_settings, name="settings-billing"),
    # Settings → Routing and SLA (owners and admins): conversations/routing_views.py.
    path("settings/routing/", routing_views.routing_page, name="settings-routing"),
    path("settings/routing/agents/<int:pk>/", routing_views.routing_agent, name="settings-routing-agent"),
    path("settings/sla/", routing_views.sla_page, name="settings-sla"),
    path("settings/sla/<int:pk>/delete/", routing_views.sla_policy_delete, name="settings-sla-delete"),
    # Settings → Data export (owners): conversations/export_views.py.
    path("settings/data-export/", export_views.download, name="data-export"),
    # Settings → Inbox (owners and admins): conversations/settings_views.py.
    path("settings/inbox/", settings_views.settings_page, name="settings-inbox"),
    path("settings/csat/", teamops_views.csat_settings, name="settings-csat"),
    path("settings/macros/", teamops_views.macros_page, name="settings-macros"),
    path("settings/macros/<int:pk>/", teamops_views.macro_page, name="settings-macro"),
    path("inbox/c/<int:pk>/macros/", teamops_views.macro_menu, name="macros"),
    path("inbox/c/<int:pk>/macros/<int:macro>/", teamops_views.run_macro_view, name="run-macro"),
    path("settings/inbox/messages/", settings_views.save_messages, name="settings-inbox-messages"),
    path("settings/inbox/hours/", settings_views.save_hours, name="settings-inbox-hours"),
    path("settings/inbox/consent/", settings_views.save_consent, name="settings-inbox-consent"),
    path("settings/inbox/rules/", settings_views.rules, name="settings-inbox-rules"),
    path("settings/inbox/rules/<int:pk>/", settings_views.rule, name="settings-inbox-rule"),
    path(
        "settings/inbox/rules/<int:pk>/active/",
        settings_views.rule_active,
        name="settings-inbox-rule-active",
    ),
    path("settings/inbox/rules/<int:pk>/move/", settings_views.rule_move, name="settings-inbox-rule-move"),
    path(
        "settings/inbox/rules/<int:pk>/delete/",
        settings_views.rule_delete,
        name="settings-inbox-rule-delete",
    ),
    path("settings/inbox/replies/", settings_views.replies, name="settings-inbox-replies"),
    path("settings/inbox/replies/<int:pk>/", settings_views.reply, name="settings-inbox-reply"),
    path(
        "settings/inbox/replies/<int:pk>/delete/",
        settings_views.reply_delete,
        name="settings-inbox-reply-delete",
    ),
]
