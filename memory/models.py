"""What runs remember: embedded, full-text searchable entries per project, and learned
rules."""

from __future__ import annotations

import hashlib

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from pgvector.django import VectorField

# Vectors of every dimension share one column; each dimension has its own partial HNSW
# index on `embedding::vector(<dim>)` (see memory.services.ensure_index), and queries
# repeat that expression and condition so the planner can use it.
HNSW_INDEX = "memory_embedding_hnsw_{dim}"


def content_hash(kind: str, path: str, symbol: str, title: str, text: str) -> str:
    return hashlib.sha256("\0".join((kind, path, symbol, title, text)).encode()).hexdigest()


class Memory(models.Model):
    class Kind(models.TextChoices):
        CODE = "code", "code"
        RUN_SUMMARY = "run_summary", "run summary"
        PHASE_SUMMARY = "phase_summary", "phase summary"
        ERROR_FIX = "error_fix", "error and fix"
        DOCTOR = "doctor", "Doctor diagnosis"
        DECISION = "decision", "decision"
        PLAN_CHANGE = "plan_change", "plan change"
        ANCHOR = "anchor", "intention anchor"

    project = models.ForeignKey("runs.Project", on_delete=models.CASCADE, related_name="memories")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="memories"
    )
    phase_id = models.CharField(max_length=100, blank=True)
    path = models.CharField(max_length=500, blank=True)
    symbol = models.CharField(max_length=200, blank=True)
    line = models.PositiveIntegerField(null=True, blank=True)
    title = models.CharField(max_length=300)
    text = models.TextField()
    content_hash = models.CharField(
        max_length=64, help_text="sha256 of kind, path, symbol, title, text"
    )
    embedding = VectorField()
    embedding_model = models.CharField(max_length=200)
    embedding_dim = models.PositiveIntegerField()
    search = models.GeneratedField(
        expression=SearchVector("title", weight="A", config="english")
        + SearchVector("text", weight="B", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last stored, or stored again")

    class Meta:
        verbose_name_plural = "memories"
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind", "path", "symbol", "content_hash"],
                name="memory_unique_content",
            )
        ]
        indexes = [
            GinIndex(fields=["search"], name="memory_search_gin"),
            models.Index(fields=["updated_at"], name="memory_updated_at"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.title[:80]}"


class LearnedRule(models.Model):
    class Source(models.TextChoices):
        AUTO = "auto"
        MANUAL = "manual"

    project = models.ForeignKey(
        "runs.Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="learned_rules",
        help_text="Empty: applies to every project",
    )
    signature = models.CharField(max_length=40, help_text="Normalised failure signature")
    failure = models.TextField(help_text="The failure, normalised")
    hint = models.TextField(help_text="What the Builder is told")
    category = models.CharField(
        max_length=100, blank=True, help_text="Only phases of this category (empty: any)"
    )
    paths = models.JSONField(
        default=list, blank=True, help_text="Only phases whose scope overlaps these (empty: any)"
    )
    occurrences = models.PositiveIntegerField(default=1)
    enabled = models.BooleanField(default=False)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.AUTO)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-occurrences", "-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "signature"], name="rule_signature_unique_per_project"
            )
        ]

    def __str__(self) -> str:
        return self.hint[:80]
