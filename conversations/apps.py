from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        from conversations.contact_page import register_contact_page

        register_contact_page()

        from conversations.services.csat import schedule_survey
        from conversations.services.routing import assign_queued_conversations, route_conversation
        from conversations.services.workflow import QUEUE_ENTERED_HOOKS, RESOLVED_HOOKS
        from crm.services.agents import ROOM_FREED_HOOKS

        # Auto-assignment: an agent came online, got more room or resolved one: the oldest queued
        # conversations get assigned; the bot handed one over: it is routed at once.
        ROOM_FREED_HOOKS.append(assign_queued_conversations)
        QUEUE_ENTERED_HOOKS.append(route_conversation)
        RESOLVED_HOOKS.append(schedule_survey)
