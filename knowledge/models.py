"""Knowledge bases and what they are made of: sources, documents and chunks.

PostgreSQL is the system of record: every chunk's text, context and embedding live here, so
the Chroma index (one collection per knowledge base) can always be rebuilt from these rows.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import connection, models

from chatbot.crypto import EncryptedTextField


class KnowledgeBase(models.Model):
    class Embedder(models.TextChoices):
        MINILM = "minilm", "all-MiniLM-L6-v2 (local, offline)"
        OPENAI_SMALL = "openai:text-embedding-3-small", "OpenAI text-embedding-3-small"
        OPENAI_LARGE = "openai:text-embedding-3-large", "OpenAI text-embedding-3-large"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    chunk_tokens = models.PositiveIntegerField(
        default=200, help_text="Chunk size in the embedder's tokens (at most 256 for MiniLM)."
    )
    chunk_overlap = models.PositiveIntegerField(default=30, help_text="Overlap in tokens.")
    embedder = models.CharField(max_length=64, choices=Embedder, default=Embedder.MINILM)
    embedder_api_key = EncryptedTextField(
        blank=True, help_text="OpenAI API key for OpenAI embeddings. Stored encrypted."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def collection_name(self) -> str:
        """One Chroma collection per knowledge base, named from schema and id, so tenants
        never share a collection (and no metadata filter sits on the query path)."""
        return f"{settings.PARLEY_CHROMA_PREFIX}_{connection.schema_name}_kb{self.pk}"

    def has_content(self) -> bool:
        return Chunk.objects.filter(document__source__knowledge_base=self).exists()


class Source(models.Model):
    class Kind(models.TextChoices):
        FILE = "file", "Uploaded file"
        TEXT = "text", "Pasted text"
        QA = "qa", "Q&A pairs"
        URL = "url", "Web page"
        URLS = "urls", "List of web pages"
        SITEMAP = "sitemap", "Sitemap"
        CRAWL = "crawl", "Website crawl"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        READY = "ready"
        PARTIAL = "partial"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Schedule(models.TextChoices):
        OFF = "off", "Off"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    WEB_KINDS = frozenset({Kind.URL, Kind.URLS, Kind.SITEMAP, Kind.CRAWL})

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="sources"
    )
    kind = models.CharField(max_length=16, choices=Kind)
    title = models.CharField(max_length=500, blank=True)
    config = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    # Counters are derived from the documents (see Source.refresh_counters), never incremented,
    # so a retried task cannot count twice.
    documents_total = models.PositiveIntegerField(default=0)
    documents_done = models.PositiveIntegerField(default=0)
    documents_failed = models.PositiveIntegerField(default=0)
    chunks = models.PositiveIntegerField(default=0)
    # Web sources, per sync: pages fetched, (re-)indexed, unchanged, and gone since last time.
    documents_fetched = models.PositiveIntegerField(default=0)
    documents_indexed = models.PositiveIntegerField(default=0)
    documents_unchanged = models.PositiveIntegerField(default=0)
    documents_removed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    schedule = models.CharField(max_length=8, choices=Schedule, default=Schedule.OFF)
    cancel_requested = models.BooleanField(default=False)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["knowledge_base", "status"])]

    def __str__(self) -> str:
        return self.title or f"{self.get_kind_display()} #{self.pk}"

    @property
    def is_web(self) -> bool:
        return self.kind in self.WEB_KINDS

    @property
    def progress(self) -> int:
        if not self.documents_total:
            return 100 if self.status in {self.Status.READY, self.Status.FAILED} else 0
        finished = self.documents_done + self.documents_failed
        return round(100 * finished / self.documents_total)


class SourceFile(models.Model):
    """An uploaded file's bytes, kept in PostgreSQL so that a source can be re-ingested on
    any worker and the whole knowledge survives in one backup."""

    source = models.OneToOneField(Source, on_delete=models.CASCADE, related_name="file")
    name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    data = models.BinaryField()

    def __str__(self) -> str:
        return self.name


class Document(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"
        EMPTY = "empty"  # parsed fine but held no text worth indexing

    class Outcome(models.TextChoices):
        """What the latest sync did with the document."""

        NONE = "", "—"
        INDEXED = "indexed"
        UNCHANGED = "unchanged"
        FAILED = "failed"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="documents")
    # Stable key of the document within its source (URL, file name, pair number): re-running
    # the source finds the same rows instead of adding new ones.
    ref = models.CharField(max_length=2048)
    title = models.CharField(max_length=500, blank=True)
    url = models.CharField(max_length=2048, blank=True, help_text="Origin URL or file name.")
    mime_type = models.CharField(max_length=128, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    error = models.TextField(blank=True)
    size = models.PositiveBigIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome, default=Outcome.NONE, blank=True)
    # Web pages: the fetched body waiting to be processed (cleared once indexed), and the
    # validators for conditional re-fetches.
    raw_body = models.BinaryField(null=True, blank=True, editable=False)
    raw_content_type = models.CharField(max_length=128, blank=True)
    etag = models.CharField(max_length=512, blank=True)
    last_modified = models.CharField(max_length=64, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "ref"], name="document_unique_ref")
        ]
        indexes = [models.Index(fields=["source", "status"])]

    def __str__(self) -> str:
        return self.title or self.url or self.ref


class Chunk(models.Model):
    # The Chroma vector id: "<document id>-<content hash prefix>-<ordinal>". Deterministic,
    # so re-processing the same content upserts the same vectors (no duplicates).
    id = models.CharField(max_length=80, primary_key=True)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # Denormalised from document → source, so full-text search filters its GIN matches by
    # knowledge base on the row itself: with the joins, the planner ran the GIN scan once per
    # document (docs/retrieval.md). The pipeline sets it; a trigger fills it for any other
    # writer (migration 0003), so it is never missing.
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, null=True, editable=False, related_name="+"
    )
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    # Title and heading path ("Guide > Install > Linux"), for citations and full-text search.
    context = models.TextField(blank=True)
    heading_path = models.JSONField(default=list, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    page = models.PositiveIntegerField(null=True, blank=True)
    embedding = models.BinaryField(null=True, blank=True, help_text="float32 vector")
    search_vector = models.GeneratedField(
        expression=SearchVector("context", weight="A", config="english")
        + SearchVector("text", weight="B", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["document", "ordinal"]
        indexes = [GinIndex(fields=["search_vector"], name="chunk_search_gin")]

    def __str__(self) -> str:
        return f"{self.document} #{self.ordinal}"
