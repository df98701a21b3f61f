"""Knowledge files move from knowledge/<year>/<month>/<schema>/ to knowledge/<schema>/: one prefix per
tenant, so the tenant's backup, export and purge find them (tenants.backup.storage_prefixes)."""

from django.core.files.base import File
from django.core.files.storage import storages
from django.db import migrations, models


def move_files(apps, schema_editor):
    schema = schema_editor.connection.schema_name
    prefix = f"knowledge/{schema}/"
    storage = storages["default"]
    Source = apps.get_model("knowledge", "Source")
    for source in Source.objects.exclude(file="").exclude(file__startswith=prefix).iterator():
        old = source.file.name
        if not storage.exists(old):
            continue
        with storage.open(old, "rb") as handle:
            new = storage.save(prefix + old.rsplit("/", 1)[-1], File(handle))
        Source.objects.filter(pk=source.pk).update(file=new)
        storage.delete(old)


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0003_vector_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="source",
            name="file",
            field=models.FileField(blank=True, max_length=300, upload_to="knowledge/"),
        ),
        migrations.RunPython(move_files, migrations.RunPython.noop, elidable=True),
    ]
