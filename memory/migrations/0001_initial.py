"""Memory entries, and learned rules taken over from governance with their rows."""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
import pgvector.django.vector
from django.db import migrations, models

# Vectors of every dimension share one column; each dimension gets its own partial HNSW
# index (memory.services.ensure_index creates them for other dimensions at run time).
HNSW_256 = (
    "CREATE INDEX IF NOT EXISTS memory_embedding_hnsw_256 ON memory_memory "
    "USING hnsw ((embedding::vector(256)) vector_cosine_ops) WHERE embedding_dim = 256"
)


def move_content_type(apps, schema_editor, source="governance", target="memory"):
    """Permissions and admin history of learned rules hang on their content type: move it
    along, unless the target already has one."""
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(
        schema_editor.connection.alias
    )
    if not content_types.filter(app_label=target, model="learnedrule").exists():
        content_types.filter(app_label=source, model="learnedrule").update(app_label=target)


def move_content_type_back(apps, schema_editor):
    move_content_type(apps, schema_editor, source="memory", target="governance")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("governance", "0002_move_learned_rule_to_memory"),
        ("runs", "0001_vector_extension"),
        ("runs", "0010_memory_context"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="LearnedRule",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "signature",
                            models.CharField(
                                help_text="Normalised failure signature", max_length=40
                            ),
                        ),
                        ("failure", models.TextField(help_text="The failure, normalised")),
                        ("hint", models.TextField(help_text="What the Builder is told")),
                        (
                            "category",
                            models.CharField(
                                blank=True,
                                help_text="Only phases of this category (empty: any)",
                                max_length=100,
                            ),
                        ),
                        (
                            "paths",
                            models.JSONField(
                                blank=True,
                                default=list,
                                help_text="Only phases whose scope overlaps these (empty: any)",
                            ),
                        ),
                        ("occurrences", models.PositiveIntegerField(default=1)),
                        ("enabled", models.BooleanField(default=False)),
                        (
                            "source",
                            models.CharField(
                                choices=[("auto", "Auto"), ("manual", "Manual")],
                                default="auto",
                                max_length=10,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "project",
                            models.ForeignKey(
                                blank=True,
                                help_text="Empty: applies to every project",
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="learned_rules",
                                to="runs.project",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "governance_learnedrule",
                        "ordering": ["-occurrences", "-updated_at"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("project", "signature"),
                                name="rule_signature_unique_per_project",
                            )
                        ],
                    },
                )
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="learnedrule", table=None),
        migrations.RunPython(move_content_type, move_content_type_back),
        migrations.CreateModel(
            name="Memory",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("code", "code"),
                            ("run_summary", "run summary"),
                            ("phase_summary", "phase summary"),
                            ("error_fix", "error and fix"),
                            ("doctor", "Doctor diagnosis"),
                            ("decision", "decision"),
                            ("plan_change", "plan change"),
                            ("anchor", "intention anchor"),
                        ],
                        max_length=20,
                    ),
                ),
                ("phase_id", models.CharField(blank=True, max_length=100)),
                ("path", models.CharField(blank=True, max_length=500)),
                ("symbol", models.CharField(blank=True, max_length=200)),
                ("line", models.PositiveIntegerField(blank=True, null=True)),
                ("title", models.CharField(max_length=300)),
                ("text", models.TextField()),
                (
                    "content_hash",
                    models.CharField(
                        help_text="sha256 of kind, path, symbol, title, text", max_length=64
                    ),
                ),
                ("embedding", pgvector.django.vector.VectorField()),
                ("embedding_model", models.CharField(max_length=200)),
                ("embedding_dim", models.PositiveIntegerField()),
                (
                    "search",
                    models.GeneratedField(
                        db_persist=True,
                        expression=django.contrib.postgres.search.CombinedSearchVector(
                            django.contrib.postgres.search.SearchVector(
                                "title", config="english", weight="A"
                            ),
                            "||",
                            django.contrib.postgres.search.SearchVector(
                                "text", config="english", weight="B"
                            ),
                            django.contrib.postgres.search.SearchConfig("english"),
                        ),
                        output_field=django.contrib.postgres.search.SearchVectorField(),
                    ),
                ),
                ("meta", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "updated_at",
                    models.DateTimeField(auto_now=True, help_text="Last stored, or stored again"),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memories",
                        to="runs.project",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="memories",
                        to="runs.run",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "memories",
                "ordering": ["-updated_at"],
                "indexes": [
                    django.contrib.postgres.indexes.GinIndex(
                        fields=["search"], name="memory_search_gin"
                    ),
                    models.Index(fields=["updated_at"], name="memory_updated_at"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("project", "kind", "path", "symbol", "content_hash"),
                        name="memory_unique_content",
                    )
                ],
            },
        ),
        migrations.RunSQL(HNSW_256, "DROP INDEX IF EXISTS memory_embedding_hnsw_256"),
    ]
