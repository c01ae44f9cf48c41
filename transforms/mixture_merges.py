"""Merge-list readers for mixture inference, each paired with the pretokenizer of its tokenizer.

Mixture inference replays a tokenizer's merges on sample text, so the text must be cut into the same
pretokens and the same base symbols (bytes for byte-level BPE, characters for SentencePiece) the tokenizer
was trained on. A `MergeList` carries both; every reader raises `MergeListError` with the reason when a file
cannot be used.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import base64
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import regex

# Pretokenizer regexes of OpenAI's encodings (facts of the published tokenizers, as tiktoken ships them).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s"""
)
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
PATTERNS = {"gpt2": GPT2_PATTERN, "cl100k": CL100K_PATTERN, "o200k": O200K_PATTERN}

SP_SPACE = "\u2581"  # SentencePiece's visible space


class MergeListError(ValueError):
    """A merge list that cannot be read, or whose pretokenizer does not fit its merges."""


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte -> the byte (the `ByteLevel` alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


def decode_byte_level(token: str) -> bytes:
    table = byte_alphabet()
    try:
        return bytes(table[ch] for ch in token)
    except KeyError as exc:
        raise MergeListError(f"token {token!r} has a character outside the byte-level alphabet") from exc


@dataclass
class Pretokenizer:
    """Text -> pretokens, each a `bytes` (byte-level BPE) or a `str` of base characters (SentencePiece).

    It pickles as (kind, argument) and rebuilds its splitter on unpickling, so Beam workers can use it.
    """

    name: str
    byte_level: bool
    kind: str
    arg: object = field(repr=False)
    split: Callable[[str], list] = field(repr=False, compare=False)

    def __call__(self, text: str) -> list:
        return self.split(text)

    def __reduce__(self):
        return (_BUILDERS[self.kind], (self.arg,))


def regex_pretokenizer(kind: str) -> Pretokenizer:
    """One of the GPT-2 / cl100k / o200k regexes; pretokens are the UTF-8 bytes of each match."""
    pattern = regex.compile(PATTERNS[kind])

    def split(text: str) -> list[bytes]:
        return [m.encode("utf-8") for m in pattern.findall(text)]

    return Pretokenizer(kind, True, "regex", kind, split)


def hf_pretokenizer(tokenizer_json: str) -> Pretokenizer:
    """The normalizer and pre_tokenizer of a `tokenizer.json`, run by HF `tokenizers` itself."""
    from tokenizers import Tokenizer

    spec = json.loads(tokenizer_json)
    tok = Tokenizer.from_str(tokenizer_json)
    normalizer, pre = tok.normalizer, tok.pre_tokenizer
    byte_level = _mentions(spec.get("pre_tokenizer"), "ByteLevel")
    if pre is None:
        raise MergeListError("tokenizer.json has no pre_tokenizer: merges would span whole lines")

    def split(text: str) -> list:
        if normalizer is not None:
            text = normalizer.normalize_str(text)
        pieces = [p for p, _ in pre.pre_tokenize_str(text)]
        if byte_level:
            return [decode_byte_level(p) for p in pieces]
        return pieces

    name = "hf:" + hashlib.sha256(tokenizer_json.encode()).hexdigest()[:12]
    return Pretokenizer(name, byte_level, "hf", tokenizer_json, split)


def sentencepiece_pretokenizer(model_bytes: bytes) -> Pretokenizer:
    """SentencePiece's normalizer, then one pretoken per `▁`-prefixed word (its trainer never merges across).

    A character outside the vocabulary is never merged, so it ends a pretoken and is dropped.
    """
    import sentencepiece as spm

    proc = spm.SentencePieceProcessor(model_proto=model_bytes)
    known = frozenset(p for p in map(proc.id_to_piece, range(proc.get_piece_size())) if len(p) == 1)
    word_re = regex.compile(SP_SPACE + "?[^" + SP_SPACE + "]+|" + SP_SPACE + "+")

    def split(text: str) -> list[str]:
        out = []
        for word in word_re.findall(proc.normalize(text)):
            start = 0
            for i, ch in enumerate(word):
                if ch not in known:
                    if i > start:
                        out.append(word[start:i])
                    start = i + 1
            if start < len(word):
                out.append(word[start:])
        return out

    name = "sp:" + hashlib.sha256(model_bytes).hexdigest()[:12]
    return Pretokenizer(name, False, "sp", model_bytes, split)


_BUILDERS = {"regex": regex_pretokenizer, "hf": hf_pretokenizer, "sp": sentencepiece_pretokenizer}


def _mentions(node, type_name: str) -> bool:
    if isinstance(node, dict):
        return node.get("type") == type_name or any(_mentions(v, type_name) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, type_name) for v in node)
    return False


@dataclass
class MergeList:
    """Ordered merges (left, right) of base-symbol strings, with the pretokenizer that must cut the text."""

    merges: list[tuple]
    pretokenizer: Pretokenizer
    source: str
    sha256: str
    format: str

    def top(self, t: int | None) -> "MergeList":
        if t is None or t >= len(self.merges):
            return self
        return MergeList(self.merges[:t], self.pretokenizer, self.source, self.sha256, self.format)


def _bpe_split(token: Sequence, rank: dict, limit: int) -> list:
    """Run BPE on `token`'s symbols with only merges ranked below `limit`; returns the final parts."""
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best, best_rank = -1, limit
        for i in range(len(parts) - 1):
            r = rank.get(parts[i] + parts[i + 1])
            if r is not None and r < best_rank:
                best, best_rank = i, r
        if best < 0:
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return parts


def merges_from_ranks(ranked: list, rank: dict) -> list[tuple]:
    """Rebuild the merge order from a rank-ordered vocabulary (tiktoken, SentencePiece BPE).

    A token of rank r was created by merging the two parts that BPE with the lower-ranked tokens leaves; if
    it leaves more than two, the vocabulary was not made by BPE merges and we stop with an error.
    """
    merges = []
    for token in ranked:
        if len(token) < 2:
            continue
        parts = _bpe_split(token, rank, rank[token])
        if len(parts) != 2:
            raise MergeListError(f"token {token!r} (rank {rank[token]}) is not a merge of two earlier tokens")
        merges.append((parts[0], parts[1]))
    return merges


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pattern_for(path: Path, pattern: str | None) -> str:
    if pattern is not None:
        if pattern not in PATTERNS:
            raise MergeListError(f"unknown pretokenizer {pattern!r}; choose one of {sorted(PATTERNS)}")
        return pattern
    name = path.name.lower()
    for kind in ("o200k", "cl100k"):
        if kind in name:
            return kind
    if name.endswith((".tiktoken", ".tiktoken.gz")):
        raise MergeListError(f"{path.name}: cannot tell its pretokenizer from the name; pass one of {sorted(PATTERNS)}")
    return "gpt2"


def read_tiktoken(path: Path, data: bytes, pattern: str | None = None) -> MergeList:
    digest = _sha256(data)
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise MergeListError(f"{path}: not a valid gzip file ({exc})") from None
    rank: dict[bytes, int] = {}
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token_b64, rank_s = line.split()
            rank[base64.b64decode(token_b64, validate=True)] = int(rank_s)
        except ValueError:
            raise MergeListError(f"{path}:{lineno}: expected '<base64 token> <rank>'") from None
    singles = {t for t in rank if len(t) == 1}
    if len(singles) != 256:
        raise MergeListError(f"{path}: {len(singles)} single-byte tokens, a byte-level BPE has all 256")
    ordered = sorted(rank, key=rank.__getitem__)
    merges = merges_from_ranks(ordered, rank)
    kind = _pattern_for(path, pattern)
    return MergeList(merges, regex_pretokenizer(kind), str(path), digest, f"tiktoken/{kind}")


def read_merges_txt(path: Path, data: bytes, pattern: str | None = None) -> MergeList:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MergeListError(f"{path}: merges.txt is not UTF-8") from None
    merges = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise MergeListError(f"{path}:{lineno}: expected two space-separated tokens, got {line!r}")
        merges.append((decode_byte_level(parts[0]), decode_byte_level(parts[1])))
    if not merges:
        raise MergeListError(f"{path}: no merges found")
    kind = _pattern_for(path, pattern)
    return MergeList(merges, regex_pretokenizer(kind), str(path), _sha256(data), f"merges.txt/{kind}")


def read_tokenizer_json(path: Path, data: bytes) -> MergeList:
    try:
        spec = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MergeListError(f"{path}: not valid JSON ({exc})") from None
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        kind = model.get("type") if isinstance(model, dict) else None
        raise MergeListError(f"{path}: model type is {kind!r}; mixture inference needs a BPE merge list")
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise MergeListError(f"{path}: subword prefixes/suffixes are not supported (byte-level or char BPE only)")
    raw = model.get("merges") or []
    merges = []
    for i, m in enumerate(raw):
        pair = m.split(" ") if isinstance(m, str) else m
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) and p for p in pair):
            raise MergeListError(f"{path}: merge {i} is {m!r}, expected 'a b' or [a, b]")
        merges.append(tuple(pair))
    if not merges:
        raise MergeListError(f"{path}: the BPE model has no merges")
    pre = hf_pretokenizer(data.decode("utf-8"))
    if pre.byte_level:
        merges = [(decode_byte_level(a), decode_byte_level(b)) for a, b in merges]
    return MergeList(merges, pre, str(path), _sha256(data), "tokenizer.json")


def _proto_fields(buf: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of one protobuf message: just enough to read a SentencePiece model.

    The `sentencepiece_model_pb2` module that ships with sentencepiece is tied to one protobuf version, so we
    read the two fields we need (trainer_spec.model_type) straight from the wire format.
    """
    out, i = [], 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            if i >= len(buf) or shift > 63:
                raise ValueError("truncated varint")
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, wire, varint()))
        elif wire == 2:
            size = varint()
            if i + size > len(buf):
                raise ValueError("truncated field")
            out.append((number, wire, buf[i:i + size]))
            i += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out.append((number, wire, buf[i:i + width]))
            i += width
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


_SP_MODEL_TYPES = {1: "UNIGRAM", 2: "BPE", 3: "WORD", 4: "CHAR"}


def read_sentencepiece(path: Path, data: bytes) -> MergeList:
    import sentencepiece as spm

    try:
        model_type = 1  # the proto's default
        for number, wire, value in _proto_fields(data):
            if number == 2 and wire == 2:  # ModelProto.trainer_spec
                model_type = next((v for n, w, v in _proto_fields(value) if n == 3 and w == 0), model_type)
        proc = spm.SentencePieceProcessor(model_proto=data)
    except (ValueError, RuntimeError) as exc:
        raise MergeListError(f"{path}: not a SentencePiece model ({exc})") from None
    if model_type != 2:
        name = _SP_MODEL_TYPES.get(model_type, str(model_type))
        raise MergeListError(f"{path}: a SentencePiece {name} model has no merge list; only BPE models do")
    normal = [i for i in range(proc.get_piece_size())
              if not (proc.is_control(i) or proc.is_unknown(i) or proc.is_unused(i) or proc.is_byte(i))]
    ordered = [proc.id_to_piece(i) for i in sorted(normal, key=lambda i: -proc.get_score(i))]
    rank = {piece: i for i, piece in enumerate(ordered)}  # BPE scores are -(merge order)
    merges = merges_from_ranks(ordered, rank)
    return MergeList(merges, sentencepiece_pretokenizer(data), str(path), _sha256(data), "sentencepiece")


def read_merge_list(path: str | Path, pretokenizer: str | None = None) -> MergeList:
    """Read any supported merge list; `pretokenizer` overrides the regex for tiktoken / merges.txt files."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MergeListError(f"cannot read merge list {path}: {exc.strerror or exc}") from None
    name = path.name.lower()
    if name.endswith((".tiktoken", ".tiktoken.gz")):
        return read_tiktoken(path, data, pretokenizer)
    if name.endswith(".json"):
        return read_tokenizer_json(path, data)
    if name.endswith(".model"):
        return read_sentencepiece(path, data)
    if name.endswith(".txt"):
        return read_merges_txt(path, data, pretokenizer)
    raise MergeListError(f"{path}: unknown merge-list format (use tokenizer.json, merges.txt, .tiktoken[.gz] "
                         "or a SentencePiece .model)")


def default_merge_list_path() -> Path:
    """cl100k_base as shipped by the `bpe-openai` package."""
    import bpe_openai

    return Path(bpe_openai.__file__).parent / "data" / "cl100k_base.tiktoken.gz"


def check_pretokenizer(merges: MergeList, max_split_share: float = 0.01, sample: int = 20_000) -> float:
    """Share of merged tokens the pretokenizer would cut in two; above `max_split_share` it is the wrong one.

    BPE never merges across pretokens, so every token a merge creates must survive pretokenization whole.
    A wrong regex (GPT-2's on cl100k, say) or a non-byte-level splitter on byte-level merges breaks that.
    """
    pre = merges.pretokenizer
    checked = split = 0
    for a, b in merges.merges[:sample]:
        token = a + b
        if pre.byte_level:
            try:
                text = token.decode("utf-8")
            except UnicodeDecodeError:
                continue  # a partial character: pretokenizers only see whole ones
        else:
            if SP_SPACE in token[1:]:
                split += 1
                checked += 1
                continue
            text = token.replace(SP_SPACE, " ")
        pieces = pre(text)
        if not pre.byte_level:
            pieces = [p.lstrip(SP_SPACE) if not token.startswith(SP_SPACE) else p for p in pieces]
        checked += 1
        split += len([p for p in pieces if p]) > 1
    share = split / checked if checked else 0.0
    if share > max_split_share:
        raise MergeListError(
            f"{merges.source}: {share:.1%} of its merged tokens would be cut by the pretokenizer "
            f"({pre.name}); the pretokenizer does not match this merge list"
        )
    return share
