"""`manage.py check_index [--schema S] [--kb ID]`: rows without vectors and vectors
without rows, per knowledge base. Exits 1 when anything is inconsistent."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandParser

from knowledge import services
from knowledge.management.commands._tenants import knowledge_bases


class Command(BaseCommand):
    help = "Compare PostgreSQL's chunk rows with the Chroma vectors of each knowledge base."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schema", help="only this tenant")
        parser.add_argument("--kb", type=int, help="only this knowledge base (needs --schema)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        reports = []
        for schema, kb in knowledge_bases(options["schema"], options["kb"]):
            report = services.check_index(kb)
            reports.append(
                {
                    "schema": schema,
                    "knowledge_base": kb.pk,
                    "name": kb.name,
                    "rows": report.rows,
                    "vectors": report.vectors,
                    "rows_without_vectors": report.rows_without_vectors,
                    "vectors_without_rows": report.vectors_without_rows,
                }
            )
        if options["json"]:
            self.stdout.write(json.dumps(reports, indent=2))
        else:
            for r in reports:
                state = (
                    "ok"
                    if not (r["rows_without_vectors"] or r["vectors_without_rows"])
                    else "INCONSISTENT"
                )
                self.stdout.write(
                    f"{r['schema']} kb {r['knowledge_base']} ({r['name']}): {state} — "
                    f"{r['rows']} rows, {r['vectors']} vectors, "
                    f"{len(r['rows_without_vectors'])} rows without vectors, "
                    f"{len(r['vectors_without_rows'])} vectors without rows"
                )
        if any(r["rows_without_vectors"] or r["vectors_without_rows"] for r in reports):
            sys.exit(1)
