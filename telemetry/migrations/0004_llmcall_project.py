import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill_project(apps, schema_editor) -> None:
    """Every call recorded so far belongs to a run: its project is the run's."""
    LlmCall = apps.get_model("telemetry", "LlmCall")
    Run = apps.get_model("runs", "Run")
    project = Run.objects.filter(pk=OuterRef("run_id")).values("project_id")[:1]
    LlmCall.objects.filter(project__isnull=True, run__isnull=False).update(
        project=Subquery(project)
    )


def drop_runless_calls(apps, schema_editor) -> None:
    """Going back, `run` is required again: calls made without a run (plans drafted from
    notes) cannot stay."""
    apps.get_model("telemetry", "LlmCall").objects.filter(run__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0010_memory_context"),
        ("telemetry", "0003_benchmarks"),
    ]

    operations = [
        migrations.AddField(
            model_name="llmcall",
            name="project",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="llm_calls",
                to="runs.project",
            ),
        ),
        migrations.AlterField(
            model_name="llmcall",
            name="run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="llm_calls",
                to="runs.run",
            ),
        ),
        # After the change of `run`: going back, the calls without a run go first.
        migrations.RunPython(fill_project, drop_runless_calls),
    ]
