from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models


class Language(models.TextChoices):
    """A source's language picks its full-text configuration (stemming); `auto` is detected at indexing."""

    AUTO = "auto", "Detect"
    ENGLISH = "en", "English"
    SPANISH = "es", "Spanish"
    PORTUGUESE = "pt", "Portuguese"
    OTHER = "other", "Other (no stemming)"


class Source(models.Model):
    """One thing the business taught the agent: an uploaded file, pasted text, a web page or an FAQ pair.
    Its chunks are replaced whole on every (re-)index, so a reader never sees half of one."""

    class Kind(models.TextChoices):
        FILE = "file", "File"
        TEXT = "text", "Text"
        URL = "url", "Web page"
        FAQ = "faq", "FAQ"

    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    title = models.CharField(max_length=200)
    language = models.CharField(max_length=10, choices=Language.choices, default=Language.AUTO)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PROCESSING)
    error_code = models.CharField(max_length=40, blank=True)  # stable, e.g. "pdf_no_text"
    error = models.CharField(max_length=500, blank=True)  # for people
    url = models.URLField(max_length=2000, blank=True)
    # knowledge/<schema>/<random>.<ext> (knowledge.services): one prefix per tenant, which the tenant's
    # backup, export and purge walk (tenants.backup.storage_prefixes).
    file = models.FileField(upload_to="knowledge/", blank=True, max_length=300)
    file_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    text = models.TextField(blank=True)  # pasted text; for files and pages, the extracted text
    sha256 = models.CharField(max_length=64, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A passage of a source: a heading path and ~150-400 words. `search_vector` is built with the
    source's full-text configuration (accents folded); `embedding` is float32 little-endian bytes of the
    vector from `embedding_model` (knowledge/embeddings.py)."""

    # Indexed by knowledge_chunk_ordinal (source, ordinal) (issue 20).
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=500, blank=True)
    text = models.TextField()
    language = models.CharField(max_length=10, default="other")
    search_vector = SearchVectorField(null=True)
    embedding = models.BinaryField(null=True)
    embedding_model = models.CharField(max_length=100, blank=True)
    tokens = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["source_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["source", "ordinal"], name="knowledge_chunk_ordinal")]
        indexes = [GinIndex(fields=["search_vector"], name="knowledge_chunk_search")]

    def __str__(self) -> str:
        return f"{self.source_id}#{self.ordinal}"


class Faq(models.Model):
    """A question and its answer. Approved pairs are indexed (each through its own Source of kind faq);
    pending ones (suggested from an agent's reply) wait for an owner or admin."""

    class Status(models.TextChoices):
        APPROVED = "approved", "Approved"
        PENDING = "pending", "Pending approval"

    question = models.CharField(max_length=500)
    answer = models.TextField(max_length=4000)
    language = models.CharField(max_length=10, choices=Language.choices, default=Language.AUTO)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.APPROVED)
    source = models.OneToOneField(
        Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="faq"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.question


# -- the AI agent (settings, replies, handoffs) ------------------------------------------------------------


class AgentSettings(models.Model):
    """The tenant's AI agent: one row (pk=1). Off for every new tenant, and with no LLM: then it answers
    with the best matching passage. The LLM's API key is Fernet-encrypted (whatsapp.crypto's keys and
    rotation: the column name ends in `_encrypted`) and never leaves the server."""

    class Hours(models.TextChoices):
        ALWAYS = "always", "Always"
        OUTSIDE = "outside_hours", "Only outside business hours"
        INSIDE = "inside_hours", "Only during business hours"

    enabled = models.BooleanField(default=False)
    instructions = models.TextField(blank=True, max_length=2000)
    handoff_message = models.TextField(
        max_length=1000,
        default="Let me pass you to a person from our team: they will answer here shortly.",
    )
    hours = models.CharField(max_length=20, choices=Hours.choices, default=Hours.ALWAYS)
    max_replies = models.PositiveSmallIntegerField(default=5)
    # Below this retrieval score (knowledge.retrieval's fused score, 0..1) no passage answers; empty: the
    # calibrated default, knowledge.retrieval.HANDOFF_THRESHOLD.
    threshold = models.FloatField(null=True, blank=True)
    blocked_topics = models.TextField(blank=True, max_length=2000)  # one per line
    llm_enabled = models.BooleanField(default=False)
    llm_base_url = models.CharField(max_length=500, blank=True)
    llm_model = models.CharField(max_length=100, blank=True)
    llm_api_key_encrypted = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI agent settings"
        verbose_name_plural = "AI agent settings"

    def __str__(self) -> str:
        return "AI agent settings"

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_enabled and self.llm_base_url and self.llm_model)

    @property
    def effective_threshold(self) -> float:
        from knowledge.retrieval import HANDOFF_THRESHOLD

        return HANDOFF_THRESHOLD if self.threshold is None else self.threshold

    def blocked_topic_list(self) -> list[str]:
        return [line.strip() for line in self.blocked_topics.splitlines() if line.strip()]


class AIReply(models.Model):
    """An answer the AI agent sent: the passages it used (a snapshot: chunks are replaced on re-index),
    the model, tokens and latency."""

    class Mode(models.TextChoices):
        PASSAGE = "passage", "Best passage"
        LLM = "llm", "LLM"

    message = models.OneToOneField("conversations.Message", on_delete=models.CASCADE, related_name="ai_reply")
    # Indexed by knowledge_aireply_conv (conversation, created_at) (issue 20).
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="ai_replies", db_index=False
    )
    inbound = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    mode = models.CharField(max_length=10, choices=Mode.choices)
    # [{"chunk_id", "source_id", "title", "heading", "url", "score"}]
    sources = models.JSONField(default=list)
    model = models.CharField(max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="knowledge_aireply_conv")]

    def __str__(self) -> str:
        return f"AI reply {self.message_id}"


class AIHandoff(models.Model):
    """Why the AI agent gave a conversation to the people."""

    class Reason(models.TextChoices):
        MISSING_KNOWLEDGE = "missing_knowledge", "No answer in the knowledge"
        CUSTOMER_REQUEST = "customer_request", "The customer asked for a person"
        LIMIT = "limit", "Reply limit reached"
        POLICY = "policy", "Blocked topic"
        ERROR = "error", "The AI failed"

    # Indexed by knowledge_aihandoff_conv (conversation, created_at) (issue 20).
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="ai_handoffs", db_index=False
    )
    inbound = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="knowledge_aihandoff_conv")]

    def __str__(self) -> str:
        return f"{self.conversation_id}: {self.reason}"
