"""LearnedRule moved to the memory app. Its table stays; memory's first migration takes it
over (state only here: nothing is dropped)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="LearnedRule")],
            database_operations=[],
        )
    ]
