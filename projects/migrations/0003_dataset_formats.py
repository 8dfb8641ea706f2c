from django.db import migrations, models


def previews_as_records(apps, schema_editor):
    """The first version stored Alpaca rows as the preview; the page now shows records."""
    Dataset = apps.get_model("projects", "Dataset")
    for dataset in Dataset.objects.all():
        rows = [r for r in dataset.preview if isinstance(r, dict) and "instruction" in r]
        if not rows:
            continue
        dataset.preview = [
            {
                "system": "",
                "turns": [
                    {
                        "role": "user",
                        "content": r["instruction"] + ("\n\n" + r["input"] if r.get("input") else ""),
                    },
                    {"role": "assistant", "content": r["output"]},
                ],
            }
            for r in rows
        ]
        dataset.save(update_fields=["preview"])


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0002_basemodel_dataset"),
    ]

    operations = [
        migrations.RenameField(model_name="dataset", old_name="format", new_name="shape"),
        migrations.AlterField(
            model_name="dataset",
            name="shape",
            field=models.CharField(
                choices=[
                    ("alpaca", "instruction / input / output"),
                    ("prompt_completion", "prompt / completion"),
                    ("messages", "chat messages (role / content)"),
                    ("sharegpt", "ShareGPT conversations (from / value)"),
                    ("text", "plain text"),
                ],
                default="alpaca",
                max_length=20,
                verbose_name="shape",
            ),
        ),
        migrations.AddField(
            model_name="dataset",
            name="file_format",
            field=models.CharField(
                choices=[
                    ("jsonl", "JSON Lines"),
                    ("json", "JSON array"),
                    ("csv", "CSV"),
                    ("txt", "plain text"),
                ],
                default="jsonl",
                max_length=10,
                verbose_name="file format",
            ),
        ),
        migrations.AddField(
            model_name="dataset",
            name="mapping",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Shape field -> column of the file, where they differ",
            ),
        ),
        migrations.AddField(
            model_name="dataset",
            name="columns",
            field=models.JSONField(blank=True, default=list, help_text="Columns of the first rows"),
        ),
        migrations.AddField(
            model_name="dataset",
            name="text_split",
            field=models.CharField(
                choices=[
                    ("line", "one sample per line"),
                    ("blank_line", "samples separated by a blank line"),
                ],
                default="line",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="dataset",
            name="template",
            field=models.CharField(
                choices=[
                    ("model", "the model's chat template"),
                    ("alpaca", "Alpaca (### Instruction / ### Response)"),
                    ("custom", "custom template"),
                ],
                default="model",
                max_length=20,
                verbose_name="prompt template",
            ),
        ),
        migrations.AddField(
            model_name="dataset",
            name="custom_template",
            field=models.TextField(blank=True, max_length=4000, verbose_name="custom template"),
        ),
        migrations.RunPython(previews_as_records, migrations.RunPython.noop),
    ]
