"""Loads unstructured lazily, with telemetry off and its NLP model download routed away.

Importing every partitioner up front costs seconds (pandas, pdfminer, lxml, numba...), so each
format imports only its own module on first use.
"""

from __future__ import annotations

import importlib
import os
import threading
from types import ModuleType

from knowledge.parsing import offline_nlp

_lock = threading.Lock()
_ready = False

# unstructured pings a telemetry endpoint on import and on every partition call unless one of
# these is set, and prints a sales banner on first use; the process may have no network at all.
_QUIET_ENVIRONMENT = {
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
}


def _prepare() -> None:
    global _ready
    with _lock:
        if _ready:
            return
        for name, value in _QUIET_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        offline_nlp.install()
        _ready = True


def load(module_name: str) -> ModuleType:
    """Import an ``unstructured`` submodule once the process is made safe for it."""
    _prepare()
    return importlib.import_module(module_name)
