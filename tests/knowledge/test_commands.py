"""`rebuild_index` and `check_index` from the command line."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from knowledge import index, services


def test_check_index_reports_and_rebuild_index_repairs(kb_a, run_on_commit):
    run_on_commit(services.add_text_source, kb_a, "Hours", "We open at nine and close at five.")
    out = io.StringIO()
    call_command("check_index", "--schema", "tenant_a", stdout=out)
    assert "ok" in out.getvalue() and "0 rows without vectors" in out.getvalue()

    index.drop(kb_a.collection_name)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("check_index", "--schema", "tenant_a", "--kb", str(kb_a.pk), stdout=out)
    assert exited.value.code == 1
    assert "INCONSISTENT" in out.getvalue()

    out = io.StringIO()
    call_command("rebuild_index", "--schema", "tenant_a", "--kb", str(kb_a.pk), stdout=out)
    rows = services.check_index(kb_a).rows
    assert f"{rows} vectors" in out.getvalue() and rows > 0
    assert services.check_index(kb_a).consistent
    assert services.search(kb_a, "when do you open")[0]["text"].startswith("We open at nine")


def test_the_commands_refuse_unknown_tenants_and_bare_kb_ids(db):
    with pytest.raises(CommandError, match="No tenant with schema 'nope'"):
        call_command("rebuild_index", "--schema", "nope")
    with pytest.raises(CommandError, match="--kb needs --schema"):
        call_command("check_index", "--kb", "1")
