# The stored loss curves take the names that say which network each loss trains (training/cyclegan/train.py).

from django.db import migrations

RENAMES = [  # (before, after)
    ("G_A", "G_ab_gan"), ("G_B", "G_ba_gan"), ("cycle_A", "cycle_aba"), ("cycle_B", "cycle_bab"),
    ("idt_A", "G_ab_idt"), ("idt_B", "G_ba_idt"), ("D_A", "D_b"), ("D_B", "D_a"),
]


def rename(pairs):
    old = ", ".join(f"'{a}'" for a, _ in pairs)
    built = ", ".join(f"'{b}', losses -> '{a}'" for a, b in pairs)
    # One statement: the old keys go, the new ones come with the same values; rows without them stay.
    return (
        f"UPDATE training_metricpoint SET losses = (losses - ARRAY[{old}]) || jsonb_strip_nulls(jsonb_build_object({built})) "
        f"WHERE losses ?| ARRAY[{old}]"
    )


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0006_augmentation_started_at"),
    ]

    operations = [
        migrations.RunSQL(rename(RENAMES), reverse_sql=rename([(b, a) for a, b in RENAMES])),
    ]
