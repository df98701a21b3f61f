from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    """A tenant's knowledge: sources (files, text, web pages, FAQ pairs), their chunks, retrieval, and the
    AI agent built on it. A feature app: above `conversations`, beside the channel apps."""

    name = "knowledge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # conversations reaches the AI agent only through its hook (conversations.ai); the job's module is
        # imported here so that every worker declares it.
        from knowledge import agent_actors  # noqa: F401
        from knowledge.agent import register_agent

        register_agent()
        from knowledge import exports

        exports.register()
