# A delivery attempt is a winnow.jobs.BackgroundJob: "sending" while a worker beats for it, taken over when stale.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0011_export_heartbeat'),
    ]

    operations = [
        migrations.AddField(
            model_name='delivery',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='delivery',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='delivery',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('sending', 'Sending'), ('delivered', 'Delivered'), ('failed', 'Failed')], default='pending', max_length=10),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('status', 'sending')), fields=['heartbeat_at'], name='delivery_sending_idx'),
        ),
    ]
