"""Scale hooks: a URL holding a secret (hashed at rest) that scales one service; scale orders from them."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('genisys', '0005_service_defined_by'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='scaleorder',
            name='source',
            field=models.CharField(choices=[('api', 'api'), ('reconciler', 'reconciler'), ('consul', 'consul'), ('admin', 'admin'), ('hook', 'hook')], max_length=16),
        ),
        migrations.CreateModel(
            name='ScaleHook',
            fields=[
                ('id', models.CharField(editable=False, max_length=150, primary_key=True, serialize=False, unique=True)),
                ('prefix', models.CharField(editable=False, max_length=8, unique=True)),
                ('hashed_key', models.CharField(editable=False, max_length=150)),
                ('created', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('name', models.CharField(default=None, help_text='A free-form name for the API key. Need not be unique. 50 characters max.', max_length=50)),
                ('revoked', models.BooleanField(blank=True, default=False, help_text='If the API key is revoked, clients cannot use it anymore. (This cannot be undone.)')),
                ('expiry_date', models.DateTimeField(blank=True, help_text='Once API key expires, clients cannot use it anymore.', null=True, verbose_name='Expires')),
                ('last_used', models.DateTimeField(blank=True, null=True)),
                ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='scale_hooks', to=settings.AUTH_USER_MODEL)),
                ('service', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='hooks', to='genisys.service')),
            ],
            options={
                'verbose_name': 'scale hook',
                'verbose_name_plural': 'scale hooks',
                'ordering': ('-created',),
                'abstract': False,
            },
        ),
    ]
