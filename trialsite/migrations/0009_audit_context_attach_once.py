"""A cheaper _pgh_attach_context(), the function every audit trigger calls for its context row (issue 14).

django-pghistory's own version reads the context settings inside an EXCEPTION block (a subtransaction on every
audited row) and upserts the context row on every audited row. This one reads the settings with
current_setting(..., missing_ok) (no subtransaction) and upserts the context row once per transaction and
context: it remembers, in a transaction-local setting, the context id and metadata it last wrote, and writes
again only when either changed (new metadata in the same context updates the row, as before). A rolled-back
savepoint rolls the remembered value back with the row. Every audited row still gets its event row and its
context, exactly as before; only repeated identical upserts are skipped.

The setting PGHISTORY_INSTALL_CONTEXT_FUNC_ON_MIGRATE stays off, so pghistory does not reinstall its version.
"""

from django.db import migrations

CHEAPER = """
CREATE OR REPLACE FUNCTION _pgh_attach_context()
RETURNS pghistory_context.id%TYPE AS $$
    DECLARE
        _id_text TEXT := current_setting('pghistory.context_id', true);
        _metadata_text TEXT := current_setting('pghistory.context_metadata', true);
    BEGIN
        IF _id_text IS NULL OR _id_text = '' OR _metadata_text IS NULL OR _metadata_text = '' THEN
            RETURN NULL;
        END IF;
        IF current_setting('pghistory.context_attached', true) IS DISTINCT FROM _id_text || _metadata_text THEN
            INSERT INTO pghistory_context (id, metadata, created_at, updated_at)
                VALUES (_id_text::uuid, _metadata_text::jsonb, NOW(), NOW())
                ON CONFLICT (id) DO UPDATE
                    SET metadata = EXCLUDED.metadata,
                        updated_at = EXCLUDED.updated_at
                    WHERE pghistory_context.metadata != EXCLUDED.metadata;
            PERFORM set_config('pghistory.context_attached', _id_text || _metadata_text, true);
        END IF;
        RETURN _id_text::uuid;
    END;
$$ LANGUAGE plpgsql;
"""


def reinstall_pghistory_function(apps, schema_editor):
    from pghistory.models import Context

    Context.install_pgh_attach_context_func(using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("pghistory", "0007_auto_20250421_0444"),
        ("trialsite", "0008_trial_current_version"),
    ]

    operations = [
        migrations.RunSQL(CHEAPER, reverse_sql=migrations.RunSQL.noop),
        migrations.RunPython(migrations.RunPython.noop, reverse_code=reinstall_pghistory_function),
    ]
