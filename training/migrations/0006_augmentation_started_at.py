# Augmentation is a winnow.jobs.BackgroundJob: it records when its first attempt started, as the other jobs do.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0005_job_heartbeats'),
    ]

    operations = [
        migrations.AddField(
            model_name='augmentation',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
