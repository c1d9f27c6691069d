"""The database cache's table (settings.CACHES): login throttles share it across processes.

`createcachetable` is not part of `migrate`; this migration runs it so every way the API
is set up (make run, the image's api and migrate roles, tests) has the table.
"""
from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = []
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
