"""`manage.py rebuild_index [--schema S] [--kb ID]`: refill Chroma from the chunk rows."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandParser

from knowledge import services
from knowledge.management.commands._tenants import knowledge_bases


class Command(BaseCommand):
    help = "Rebuild the Chroma collections of knowledge bases from PostgreSQL's chunk rows."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schema", help="only this tenant")
        parser.add_argument("--kb", type=int, help="only this knowledge base (needs --schema)")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        for schema, kb in knowledge_bases(options["schema"], options["kb"]):
            started = time.perf_counter()
            count = services.rebuild_index(kb)
            self.stdout.write(
                f"{schema} kb {kb.pk} ({kb.name}): {count} vectors in "
                f"{time.perf_counter() - started:.1f}s"
            )
