"""Chunk.knowledge_base: denormalised from document → source for full-text search (see
knowledge/retrieval.py). Existing rows are backfilled; a trigger fills the column on insert
when a writer leaves it empty, so no code path can make a chunk invisible to search."""

import django.db.models.deletion
from django.db import migrations, models

BACKFILL = """
UPDATE knowledge_chunk c SET knowledge_base_id = s.knowledge_base_id
FROM knowledge_document d JOIN knowledge_source s ON s.id = d.source_id
WHERE d.id = c.document_id AND c.knowledge_base_id IS NULL
"""

# The function resolves its tables through the caller's search_path: the tenant's schema.
TRIGGER = """
CREATE FUNCTION knowledge_chunk_fill_knowledge_base() RETURNS trigger AS $$
BEGIN
    IF NEW.knowledge_base_id IS NULL THEN
        SELECT s.knowledge_base_id INTO NEW.knowledge_base_id
        FROM knowledge_document d JOIN knowledge_source s ON s.id = d.source_id
        WHERE d.id = NEW.document_id;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER knowledge_chunk_fill_knowledge_base BEFORE INSERT ON knowledge_chunk
FOR EACH ROW EXECUTE FUNCTION knowledge_chunk_fill_knowledge_base();
"""

DROP_TRIGGER = """
DROP TRIGGER IF EXISTS knowledge_chunk_fill_knowledge_base ON knowledge_chunk;
DROP FUNCTION IF EXISTS knowledge_chunk_fill_knowledge_base();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0002_web_sources"),
    ]

    operations = [
        migrations.AddField(
            model_name="chunk",
            name="knowledge_base",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="knowledge.knowledgebase",
            ),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.RunSQL(TRIGGER, DROP_TRIGGER),
    ]
