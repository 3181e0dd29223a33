"""Model assistance (docs/ASSIST.md): embeddings, suggestions, traps, near-duplicates, assisted answers.

The embedding column's type depends on the server: where the `vector` extension is available it is
installed first and the column is pgvector's `vector(128)` with an HNSW index for cosine distance; on a
server without it (a plain PostgreSQL 15) the column is `real[]` and nearest neighbours are an exact
scan (labeling/vectors.py). `EmbeddingField.db_type` reads which from the database, so the same
CreateModel makes either.
"""

import django.db.models.deletion
import labeling.vectors
from django.conf import settings
from django.db import migrations, models


def install_vector(apps, schema_editor):
    from labeling.vectors import vector_available

    if vector_available(schema_editor.connection):
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS vector")


def index_vectors(apps, schema_editor):
    from labeling.vectors import vector_installed

    if vector_installed(schema_editor.connection):
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS embedding_hnsw_idx ON labeling_embedding USING hnsw (vector vector_cosine_ops)"
        )


def drop_vector_index(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS embedding_hnsw_idx")


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0015_text_limits'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(install_vector, migrations.RunPython.noop),
        migrations.AddField(
            model_name='annotation',
            name='assisted',
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name='asset',
            name='phash',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='project',
            name='lease_order',
            field=models.CharField(default='upload', help_text='upload, or uncertainty: least confident suggestion first on the single-image page.', max_length=12),
        ),
        migrations.AddField(
            model_name='project',
            name='trap_rate',
            field=models.FloatField(default=0.1, help_text='Share of a suggested grid page that is trap gold.'),
        ),
        migrations.CreateModel(
            name='SuggestionFit',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=10)),
                ('feature_version', models.PositiveIntegerField(blank=True, null=True)),
                ('gold', models.PositiveIntegerField(default=0)),
                ('accepted', models.PositiveIntegerField(default=0)),
                ('heldout', models.PositiveIntegerField(default=0)),
                ('heldout_correct', models.PositiveIntegerField(default=0)),
                ('temperature', models.FloatField(default=1.0)),
                ('suggested', models.PositiveIntegerField(default=0)),
                ('error', models.CharField(blank=True, max_length=500)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='suggestion_fits', to='labeling.project')),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='Suggestion',
            fields=[
                ('task', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='suggestion', serialize=False, to='labeling.task')),
                ('confidence', models.FloatField()),
                ('batch', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='labeling.batch')),
                ('choice', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='labeling.choice')),
                ('fit', models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='labeling.suggestionfit')),
            ],
        ),
        migrations.CreateModel(
            name='Trap',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('accepted_at', models.DateTimeField(blank=True, null=True)),
                ('annotator', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('shown_choice', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='labeling.choice')),
                ('task', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='labeling.task')),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='Embedding',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('version', models.PositiveIntegerField()),
                ('vector', labeling.vectors.EmbeddingField()),
                ('asset', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='labeling.asset')),
                ('project', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='labeling.project')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('project', 'asset'), name='embedding_unique_asset')],
            },
        ),
        migrations.CreateModel(
            name='FeatureJob',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=10)),
                ('retrain', models.BooleanField(default=False, help_text='train a new feature model even if one exists')),
                ('version', models.PositiveIntegerField(blank=True, null=True)),
                ('kind', models.CharField(blank=True, max_length=20)),
                ('trained', models.BooleanField(default=False)),
                ('labels_used', models.PositiveIntegerField(default=0)),
                ('assets_total', models.PositiveIntegerField(default=0)),
                ('assets_done', models.PositiveIntegerField(default=0)),
                ('weights', models.CharField(blank=True, max_length=300)),
                ('train_seconds', models.FloatField(blank=True, null=True)),
                ('embed_seconds', models.FloatField(blank=True, null=True)),
                ('error', models.CharField(blank=True, max_length=500)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='feature_jobs', to='labeling.project')),
            ],
            options={
                'ordering': ['id'],
                'indexes': [models.Index(fields=['project', '-id'], name='featurejob_project_idx')],
            },
        ),
        migrations.CreateModel(
            name='NearDuplicate',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('phash', 'Perceptual hash'), ('embedding', 'Embedding distance')], max_length=10)),
                ('distance', models.FloatField()),
                ('asset_high', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='labeling.asset')),
                ('asset_low', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='labeling.asset')),
                ('project', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='labeling.project')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('project', 'asset_low', 'asset_high'), name='neardup_unique_pair')],
            },
        ),
        migrations.AddIndex(
            model_name='suggestionfit',
            index=models.Index(fields=['project', '-id'], name='suggestionfit_project_idx'),
        ),
        migrations.AddIndex(
            model_name='suggestion',
            index=models.Index(fields=['batch', 'confidence'], name='suggestion_uncertain_idx'),
        ),
        migrations.AddIndex(
            model_name='suggestion',
            index=models.Index(fields=['batch', 'choice', '-confidence'], name='suggestion_choice_idx'),
        ),
        migrations.AddConstraint(
            model_name='trap',
            constraint=models.UniqueConstraint(fields=('task', 'annotator'), name='trap_unique_annotator'),
        ),
        migrations.RunPython(index_vectors, drop_vector_index),
    ]
