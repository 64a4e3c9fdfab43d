"""The Chroma side of the index: one collection per knowledge base, vectors always passed
in explicitly (Chroma's default embedding function would download a model), chunk id =
vector id, upserts idempotent. Reached through one HTTP server: web and workers share it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from chromadb.errors import NotFoundError
from django.conf import settings

_client = None
_client_lock = threading.Lock()
UPSERT_BATCH = 1000


def client():  # type: ignore[no-untyped-def]
    global _client
    with _client_lock:
        if _client is None:
            import chromadb
            from chromadb.config import Settings

            url = urlsplit(settings.CHROMA_URL)
            _client = chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or (443 if url.scheme == "https" else 80),
                ssl=url.scheme == "https",
                settings=Settings(anonymized_telemetry=False),
            )
        return _client


def reset_client() -> None:
    global _client
    with _client_lock:
        _client = None


def collection(name: str, *, create: bool = True):  # type: ignore[no-untyped-def]
    if create:
        return client().get_or_create_collection(
            name, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
    return client().get_collection(name, embedding_function=None)


def upsert(
    name: str,
    ids: Sequence[str],
    embeddings: Sequence[Sequence[float]],
    metadatas: Sequence[dict[str, str | int]] | None = None,
) -> None:
    target = collection(name)
    for start in range(0, len(ids), UPSERT_BATCH):
        end = start + UPSERT_BATCH
        target.upsert(
            ids=list(ids[start:end]),
            embeddings=[list(vector) for vector in embeddings[start:end]],
            metadatas=list(metadatas[start:end]) if metadatas else None,
        )


def delete(name: str, ids: Sequence[str]) -> None:
    if not ids:
        return
    target = collection(name)
    for start in range(0, len(ids), UPSERT_BATCH):
        target.delete(ids=list(ids[start : start + UPSERT_BATCH]))


def drop(name: str) -> None:
    with contextlib.suppress(NotFoundError):  # already gone
        client().delete_collection(name)


def all_ids(name: str, page: int = 5000) -> Iterator[str]:
    try:
        target = collection(name, create=False)
    except NotFoundError:
        return
    offset = 0
    while True:
        batch = target.get(include=[], limit=page, offset=offset)["ids"]
        yield from batch
        if len(batch) < page:
            return
        offset += page


def collection_names() -> list[str]:
    return [c if isinstance(c, str) else c.name for c in client().list_collections()]


@dataclass
class Hit:
    id: str
    distance: float

    @property
    def similarity(self) -> float:
        return 1.0 - self.distance  # cosine space


_handles: dict[str, object] = {}  # collection handles for queries, by name


def query(name: str, embedding: Sequence[float], k: int) -> list[Hit]:
    """The k nearest vectors. The collection's handle is cached (fetching it is an HTTP
    round trip of its own); a handle gone stale (collection dropped, rebuilt) is fetched
    again once."""
    for attempt in range(2):
        target = _handles.get(name)
        try:
            if target is None:
                target = _handles[name] = collection(name, create=False)
            result = target.query(  # type: ignore[attr-defined]
                query_embeddings=[list(embedding)], n_results=k, include=["distances"]
            )
            break
        except NotFoundError:  # an empty knowledge base has no collection yet
            _handles.pop(name, None)
            if attempt or target is None:
                return []
    return [
        Hit(id=id_, distance=distance)
        for id_, distance in zip(result["ids"][0], result["distances"][0], strict=True)
    ]
