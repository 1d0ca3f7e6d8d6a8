"""Text embeddings: the WordLlama model shipped in its wheel (no network), or any
OpenAI-compatible /v1/embeddings endpoint. Every vector is L2-normalised, so cosine
similarity is a dot product."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np
import openai


class EmbeddingError(Exception):
    """The configured embedder cannot produce vectors; the message says which and why."""


class Embedder(Protocol):
    name: str  # stored with every vector: vectors of different names are never compared
    dim: int

    def embed(self, texts: list[str]) -> list[list[float]]: ...


def _normalised(matrix: np.ndarray, source: str) -> list[list[float]]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.all(np.isfinite(matrix)) or np.any(norms == 0):
        raise EmbeddingError(f"{source} returned a zero or non-finite vector")
    return (matrix / norms).tolist()


def _check_texts(texts: list[str]) -> None:
    for index, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"cannot embed an empty text (text {index} of {len(texts)})")


class LocalEmbedder:
    """WordLlama l2_supercat, 256 dimensions: averaged token embeddings of a Llama 2
    tokenizer. Loaded from the package's files directly: `WordLlama.load()` looks for the
    tokenizer under a folder the wheel does not have and then asks HuggingFace."""

    name = "wordllama-l2_supercat-256"
    dim = 256
    _model = None
    _lock = threading.Lock()

    @classmethod
    def _loaded(cls):
        with cls._lock:
            if cls._model is None:
                cls._model = cls._load()
            return cls._model

    @staticmethod
    def _load():
        import safetensors
        import tokenizers
        import wordllama
        from wordllama.inference import WordLlamaInference

        root = Path(wordllama.__file__).parent
        tokenizer = tokenizers.Tokenizer.from_file(
            str(root / "tokenizers" / "l2_supercat_tokenizer_config.json")
        )
        weights = root / "weights" / "l2_supercat_256.safetensors"
        with safetensors.safe_open(weights, framework="np") as f:
            matrix = f.get_tensor("embedding.weight")
        return WordLlamaInference(matrix, tokenizer)

    def embed(self, texts: list[str]) -> list[list[float]]:
        _check_texts(texts)
        if not texts:
            return []
        vectors = self._loaded().embed(texts, norm=False)
        return _normalised(np.asarray(vectors, dtype=np.float64), self.name)


class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings endpoint (OpenAI, Ollama, vLLM, llama.cpp, LM
    Studio) through the official SDK."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        max_retries: int = 3,
        timeout: float = 120.0,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.name = f"openai:{model}"
        self._dim: int | None = None
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key, max_retries=max_retries, timeout=timeout
        )

    @property
    def dim(self) -> int:
        """Known from the first reply; asked for when nothing was embedded yet."""
        if self._dim is not None:
            return self._dim
        return len(self.embed(["dimension"])[0])

    def _fail(self, why: str) -> EmbeddingError:
        return EmbeddingError(
            f"embeddings endpoint {self.base_url} (model {self.model!r}) {why}; check "
            "AUTOPACK_EMBEDDINGS_URL, AUTOPACK_EMBEDDINGS_MODEL and the server"
        )

    def embed(self, texts: list[str]) -> list[list[float]]:
        _check_texts(texts)
        if not texts:
            return []
        try:
            # The SDK asks for base64 unless told otherwise; not every compatible server
            # speaks it, every one speaks float.
            reply = self._client.embeddings.create(
                model=self.model, input=texts, encoding_format="float"
            )
        except openai.APIStatusError as exc:
            raise self._fail(f"answered {exc.status_code}: {exc.message}") from None
        except openai.APIError as exc:
            raise self._fail(f"failed: {exc.message}") from None
        if len(reply.data) != len(texts):
            raise self._fail(f"returned {len(reply.data)} vectors for {len(texts)} texts")
        rows = [item.embedding for item in sorted(reply.data, key=lambda item: item.index)]
        if len({len(row) for row in rows}) != 1 or not rows[0]:
            raise self._fail("returned vectors of differing or zero length")
        if self._dim is not None and len(rows[0]) != self._dim:
            raise self._fail(f"returned {len(rows[0])} dimensions, {self._dim} before")
        self._dim = len(rows[0])
        return _normalised(np.asarray(rows, dtype=np.float64), self.name)


@functools.lru_cache(maxsize=4)
def _configured(url: str, model: str, key_env: str, retries: int, timeout: int) -> Embedder:
    if not url:
        return LocalEmbedder()
    if not model:
        raise EmbeddingError(
            f"AUTOPACK_EMBEDDINGS_URL is {url!r} but AUTOPACK_EMBEDDINGS_MODEL is empty: "
            "set it to the embedding model the endpoint serves"
        )
    key = ""
    if key_env:
        key = os.environ.get(key_env, "")
        if not key:
            raise EmbeddingError(
                f"AUTOPACK_EMBEDDINGS_KEY_ENV names {key_env}, which is not set in this "
                "process's environment"
            )
    # The SDK insists on a key; servers that need none ignore this one.
    return OpenAIEmbedder(url, model, key or "no-key", max_retries=retries, timeout=timeout)


def embedder() -> Embedder:
    """The configured embedder, one per configuration and process."""
    from django.conf import settings

    return _configured(
        settings.AUTOPACK_EMBEDDINGS_URL,
        settings.AUTOPACK_EMBEDDINGS_MODEL,
        settings.AUTOPACK_EMBEDDINGS_KEY_ENV,
        settings.AUTOPACK_LLM_MAX_RETRIES,
        settings.AUTOPACK_LLM_TIMEOUT,
    )
