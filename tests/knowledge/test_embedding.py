"""Embedders: the local MiniLM (offline, unit vectors, input order, int8 faithful to fp32)
and OpenAI's, through the real SDK against a local server speaking its wire format."""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge import embedding
from knowledge.embedding import LocalMiniLMEmbedder, OpenAIEmbedder, get_embedder


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise OSError("network is unreachable (blocked by the test)")


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh model cache, filled (ONNX export and int8) with the network unreachable."""
    cache = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PARLEY_MODEL_CACHE", str(cache))
        patch.setattr(socket, "create_connection", _refuse)
        patch.setattr(socket.socket, "connect", _refuse)
        LocalMiniLMEmbedder().embed_documents(["warm up"])
    yield cache


@pytest.fixture
def minilm(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> LocalMiniLMEmbedder:
    monkeypatch.setenv("PARLEY_MODEL_CACHE", str(model_cache))
    return LocalMiniLMEmbedder()


def test_it_returns_384_dimensional_unit_vectors(minilm: LocalMiniLMEmbedder) -> None:
    vectors = np.array(minilm.embed_documents(["Where is my order?", "Opening hours"]))
    assert vectors.shape == (2, 384) == (2, minilm.dimensions)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert len(minilm.embed_query("Where is my order?")) == 384
    assert minilm.embed_documents([]) == []


def test_it_is_deterministic(minilm: LocalMiniLMEmbedder) -> None:
    texts = ["The warranty lasts two years.", "Shipping is free above 50 euros."]
    assert minilm.embed_documents(texts) == minilm.embed_documents(texts)


def test_a_paraphrase_ranks_above_an_unrelated_sentence(minilm: LocalMiniLMEmbedder) -> None:
    query = np.array(minilm.embed_query("How long does delivery take?"))
    paraphrase, unrelated = np.array(
        minilm.embed_documents(
            ["Orders usually arrive within three to five business days.", "Our CEO likes jazz."]
        )
    )
    assert query @ paraphrase > query @ unrelated + 0.2


def test_results_come_back_in_input_order_after_length_sorting(
    minilm: LocalMiniLMEmbedder,
) -> None:
    texts = [f"Sentence number {n} " + "with more words " * (n * 7 % 23) for n in range(70)]
    together = np.array(minilm.embed_documents(texts))  # several batches, sorted by length
    alone = np.array([minilm.embed_query(text) for text in texts])
    # int8 activation scales are per batch, so padded-batch vectors differ very slightly.
    assert (together * alone).sum(1).min() > 0.99
    assert list(np.argmax(together @ alone.T, axis=1)) == list(range(len(texts)))


def test_it_loads_and_embeds_with_the_network_unreachable(
    model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_MODEL_CACHE", str(model_cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 9))
    fresh = LocalMiniLMEmbedder()
    assert len(fresh.embed_query("offline works")) == 384


def test_int8_vectors_stay_faithful_to_fp32(
    model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_MODEL_CACHE", str(model_cache))
    texts = [
        "Reset your password from the account page.",
        "We accept Visa, Mastercard and bank transfers.",
        "The API rate limit is 100 requests per minute per key.",
    ]
    quantised = LocalMiniLMEmbedder(backend="onnx-int8")
    int8 = np.array(quantised.embed_documents(texts))
    assert quantised.backend == "onnx-int8"  # not the PyTorch fallback (no ``onnx`` package)
    fp32 = np.array(LocalMiniLMEmbedder(backend="onnx").embed_documents(texts))
    assert (int8 * fp32).sum(1).min() >= embedding.MIN_QUANTISED_COSINE


def test_it_counts_word_pieces_without_special_tokens(minilm: LocalMiniLMEmbedder) -> None:
    assert minilm.count_tokens("hello world") == 2
    assert minilm.count_tokens("word " * 1000) == 1000  # counting never truncates
    assert minilm.max_tokens == 254


def test_the_registry_knows_its_embedders() -> None:
    assert get_embedder("minilm") is get_embedder("minilm")
    small = get_embedder("openai:text-embedding-3-small", api_key="sk-test")
    assert (small.name, small.dimensions) == ("openai:text-embedding-3-small", 1536)
    assert get_embedder("openai:text-embedding-3-large", api_key="sk-test").dimensions == 3072
    with pytest.raises(ValueError, match="API key"):
        get_embedder("openai:text-embedding-3-small")
    with pytest.raises(ValueError, match="Unknown embedder"):
        get_embedder("word2vec")


class FakeOpenAI(ThreadingHTTPServer):
    """Speaks POST /v1/embeddings; replies with queued error statuses first."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.failures: list[int] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def fake_vector(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)) % 97), 1.0]


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        if self.path != "/v1/embeddings":
            return self._reply(404, {"error": {"message": "not found", "type": "invalid"}})
        if self.server.failures:
            status = self.server.failures.pop(0)
            return self._reply(status, {"error": {"message": "slow down", "type": "rate_limit"}})
        data = []
        for index, text in enumerate(body["input"]):
            vector = fake_vector(text)
            if body.get("encoding_format") == "base64":  # what the SDK asks for by default
                packed = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                data.append({"object": "embedding", "index": index, "embedding": packed})
            else:
                data.append({"object": "embedding", "index": index, "embedding": vector})
        data.reverse()  # the API does not promise order; the index field does
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        self._reply(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def openai_embedder(server: FakeOpenAI) -> OpenAIEmbedder:
    return OpenAIEmbedder("sk-test", base_url=server.base_url, backoff=0.01)


def test_openai_batches_within_the_input_limit(fake_openai: FakeOpenAI) -> None:
    embedder = openai_embedder(fake_openai)
    embedder.MAX_INPUTS = 3
    texts = [f"text {n}" * (n + 1) for n in range(8)]
    vectors = embedder.embed_documents(texts)
    assert [len(r["input"]) for r in fake_openai.requests] == [3, 3, 2]
    assert fake_openai.requests[0]["model"] == "text-embedding-3-small"
    assert [list(map(round, v)) for v in vectors] == [
        list(map(round, fake_vector(t))) for t in texts
    ]


def test_openai_batches_within_the_token_budget(fake_openai: FakeOpenAI) -> None:
    embedder = openai_embedder(fake_openai)
    embedder.MAX_REQUEST_TOKENS = 30
    embedder.embed_documents(["a" * 40, "b" * 40, "c" * 40, ""])  # ~10 tokens each
    assert [r["input"] for r in fake_openai.requests] == [
        ["a" * 40, "b" * 40, "c" * 40],
        [" "],  # the API rejects empty strings
    ]


def test_openai_retries_a_429_then_succeeds(fake_openai: FakeOpenAI) -> None:
    fake_openai.failures = [429, 503]
    vector = openai_embedder(fake_openai).embed_query("hello")
    assert list(map(round, vector)) == list(map(round, fake_vector("hello")))
    assert len(fake_openai.requests) == 3


def test_openai_gives_up_after_the_last_attempt(fake_openai: FakeOpenAI) -> None:
    import openai

    embedder = openai_embedder(fake_openai)
    embedder.MAX_ATTEMPTS = 2
    fake_openai.failures = [500, 500, 500]
    with pytest.raises(openai.InternalServerError):
        embedder.embed_query("hello")
    assert len(fake_openai.requests) == 2


def test_openai_counts_tokens_offline(fake_openai: FakeOpenAI) -> None:
    embedder = openai_embedder(fake_openai)
    count = embedder.count_tokens("The quick brown fox jumps over the lazy dog.")
    assert 8 <= count <= 14  # tiktoken says 10; the offline estimate says 11
