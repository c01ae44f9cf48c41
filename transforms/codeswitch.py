"""Stage `codeswitch`: synthetic code-switched sentences from mined bitext, with code-mixing metrics.

For every language pair, a word aligner is trained on all its mined pairs (transforms/codeswitch_align.py);
then each pair yields up to `max_samples_per_pair` samples in which spans of the matrix sentence are
replaced by material of the embedded language, with one of three methods:

- `alignment` (default): alignment-consistent phrase pairs (Koehn et al. 2003) are swapped until the
  sample's CMI reaches a target drawn from `target_cmi` (or `switch_rate` of the matrix words);
- `dictionary` (CoSDA-ML, Qin et al. 2020): a sentence is switched with probability `ratio`, each word with
  probability `cross`, by a translation from a lexicon read off the alignments or supplied by the user;
- `entity` (EntityCS, Whitehouse et al. 2022): every entity mention found in a user-supplied label table is
  replaced by its label in the embedded language; as in EntityCS, only when every mention has one.

URLs, e-mail addresses, numbers, code and markup are never switched. The matrix sentence's own spacing is
kept; a space is added only between two spaced-script words that would otherwise touch, and none is left
between two characters of scripts written without spaces (Chinese, Japanese, Thai...).
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import apache_beam as beam
import langcodes
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import regex
import xxhash

from schemas.codeswitch import CODESWITCH_SCHEMA
from transforms.codeswitch_align import AlignerParams, Alignment, align_corpus
from transforms.codeswitch_metrics import UNIV, cmi_bin, sample_metrics
from transforms.config import CodeSwitchConfig
from transforms.core import Counters, TableSpec
from transforms.text import NO_SPACE_SCRIPTS, is_punctuation_token, script_of, segment_words

STAGE = "codeswitch"
METHODS = ("alignment", "dictionary", "entity")

# Spans that must come through untouched: URLs, e-mail, markup, entities, inline code, numbers and
# identifiers with digits or underscores (code, model names).
_PROTECTED_RE = regex.compile(
    r"""(?:https?|ftp)://\S+ | www\.\S+ | [\w.+\-]+@[\w\-]+\.[\w.\-]+
    | `[^`\n]*` | <[^<>\n]{1,200}> | &[#\w]+;
    | \p{N}+(?:[.,:/\-]\p{N}+)* | (?<![\w\-])[A-Za-z0-9]*(?:_|[0-9])[\w\-]*
    | (?<!\w)\p{Ll}+\p{Lu}\w*""",
    regex.VERBOSE,
)


# --- tokenisation ------------------------------------------------------------------------------------


@dataclass
class Sentence:
    """A sentence's tokens with character offsets; `word[k]` is False for punctuation and protected tokens."""

    text: str
    lang: str
    script: str
    tokens: list[str]
    starts: list[int]
    ends: list[int]
    word: list[bool]
    protected: list[bool]

    @property
    def folded(self) -> list[str]:
        return [t.casefold() for t in self.tokens]

    def tag(self, k: int) -> str:
        return self.lang if self.word[k] else UNIV

    def n_words(self) -> int:
        return sum(self.word)


def tokenize(text: str, lang: str) -> Sentence | None:
    """Language-aware tokens (transforms.text.segment_words) located in the text; None if they cannot be."""
    script = script_of(text)
    tokens = segment_words(text, script)
    starts, ends = [], []
    cursor = 0
    for token in tokens:
        at = text.find(token, cursor)
        if at < 0:
            return None
        starts.append(at)
        ends.append(at + len(token))
        cursor = at + len(token)
    shielded = np.zeros(len(text) + 1, dtype=bool)
    for m in _PROTECTED_RE.finditer(text):
        shielded[m.start():m.end()] = True
    protected = [bool(shielded[s:e].any()) for s, e in zip(starts, ends)]
    word = [not p and not is_punctuation_token(t) for t, p in zip(tokens, protected)]
    return Sentence(text, lang, script, tokens, starts, ends, word, protected)


@lru_cache(maxsize=4096)
def markup_tag(lang: str) -> str:
    """EntityCS-style tag: the ISO 639-1 code where one exists (deu -> de, cmn -> zh), else the code."""
    try:
        return langcodes.standardize_tag(lang, macro=True)
    except ValueError:  # langcodes' LanguageTagError included
        return regex.sub(r"[^A-Za-z0-9\-]", "", lang) or "und"


def same_language(a: str, b: str) -> bool:
    return markup_tag(a) == markup_tag(b)


@lru_cache(maxsize=4096)
def _no_space_char(ch: str) -> bool:
    return script_of(ch) in NO_SPACE_SCRIPTS


def _is_cased_upper(ch: str) -> bool:
    return ch.isupper() and ch.lower() != ch


# --- switching ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replacement:
    """Matrix tokens [m_start, m_end) become `text`, whose tokens and tags are `tokens`."""

    m_start: int
    m_end: int
    text: str
    tokens: tuple[tuple[str, str], ...]
    e_span: tuple[int, int] | None = None  # embedded token range, for alignment-based phrases


@dataclass
class Sample:
    text: str
    markup: str
    tokens: list[tuple[str, str]]
    n_spans: int
    n_switched: int


class Truecaser:
    """Preferred surface form of each word seen away from sentence starts, so that a sentence-initial
    "The" inserted mid-sentence becomes "the" while "Tom" and German nouns keep their capital."""

    def __init__(self, sentences: Iterable[Sentence]):
        forms: dict[str, Counter] = defaultdict(Counter)
        for s in sentences:
            first_word = next((k for k, w in enumerate(s.word) if w), None)
            for k, token in enumerate(s.tokens):
                if s.word[k] and k != first_word:
                    forms[token.casefold()][token] += 1
        self.best = {w: max(sorted(c), key=c.__getitem__) for w, c in forms.items()}

    def surface(self, token: str) -> str:
        return self.best.get(token.casefold(), token)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _adjust_case(rep: Replacement, matrix: Sentence, embedded_first: bool, truecase: Truecaser) -> Replacement:
    """Sentence-initial casing follows the matrix sentence, not the embedded one."""
    text, tokens = rep.text, list(rep.tokens)
    if not tokens:
        return rep
    first_word_m = next((k for k, w in enumerate(matrix.word) if w), None)
    if embedded_first and rep.m_start != first_word_m:
        surface = truecase.surface(tokens[0][0])
        if surface != tokens[0][0] and text.startswith(tokens[0][0]):
            text = surface + text[len(tokens[0][0]):]
            tokens[0] = (surface, tokens[0][1])
    if rep.m_start == first_word_m and _is_cased_upper(matrix.tokens[first_word_m][:1]):
        text = _capitalise(text)
        tokens[0] = (_capitalise(tokens[0][0]), tokens[0][1])
    return Replacement(rep.m_start, rep.m_end, text, tuple(tokens), rep.e_span)


def _join(left: str, gap: str, right: str, touches_insert: bool) -> str:
    """The gap between two pieces, made natural for the scripts on either side."""
    if not touches_insert or not left or not right:
        return gap
    a, b = left[-1], right[0]
    if gap == "" and a.isalnum() and b.isalnum() and not _no_space_char(a) and not _no_space_char(b):
        return " "
    if gap and gap.isspace() and _no_space_char(a) and _no_space_char(b):
        return ""
    return gap


def render(matrix: Sentence, replacements: list[Replacement], embedded_lang: str) -> Sample:
    """Apply non-overlapping replacements to the matrix sentence: plain text, markup and tagged tokens."""
    reps = sorted(replacements, key=lambda r: r.m_start)
    pieces: list[tuple[str, bool]] = []  # (text, inserted); matrix text between replacements included
    tokens: list[tuple[str, str]] = []
    cursor = 0
    k = 0
    for rep in reps:
        while k < rep.m_start:
            tokens.append((matrix.tokens[k], matrix.tag(k)))
            k += 1
        pieces.append((matrix.text[cursor:matrix.starts[rep.m_start]], False))
        pieces.append((rep.text, True))
        tokens.extend(rep.tokens)
        cursor = matrix.ends[rep.m_end - 1]
        k = rep.m_end
    tokens.extend((matrix.tokens[j], matrix.tag(j)) for j in range(k, len(matrix.tokens)))
    pieces.append((matrix.text[cursor:], False))

    tag = markup_tag(embedded_lang)
    plain: list[str] = []
    marked: list[str] = []
    open_span = False
    n_spans = 0
    for idx, (piece, inserted) in enumerate(pieces):
        if inserted:
            if not open_span:
                marked.append(f"<{tag}>")
                n_spans += 1
                open_span = True
            plain.append(piece)
            marked.append(piece)
            continue
        before = plain[-1] if plain else ""
        after = pieces[idx + 1][0] if idx + 1 < len(pieces) else ""
        prev_inserted = idx > 0 and pieces[idx - 1][1]
        next_inserted = idx + 1 < len(pieces) and pieces[idx + 1][1]
        if piece == "" or piece.isspace():
            gap = _join(before, piece, after, prev_inserted or next_inserted)
            plain.append(gap)
            if open_span and next_inserted:  # adjacent inserted phrases form one span
                marked.append(gap)
                continue
        else:
            lead = _join(before, "", piece, prev_inserted)
            trail = _join(piece, "", after, next_inserted)
            piece = lead + piece + trail
            plain.append(piece)
        if open_span:
            marked.append(f"</{tag}>")
            open_span = False
        marked.append(plain[-1])
    if open_span:
        marked.append(f"</{tag}>")
    n_switched = sum(sum(matrix.word[r.m_start:r.m_end]) for r in reps)
    return Sample("".join(plain), "".join(marked), tokens, n_spans, n_switched)


def phrase_pairs(
    matrix: Sentence, embedded: Sentence, links: Iterable[tuple[int, int]], sure: set[tuple[int, int]], max_words: int
) -> list[Replacement]:
    """Alignment-consistent phrase pairs (matrix span -> embedded span), minimal on the embedded side.

    A pair is kept when no word inside either span is aligned outside the other, both spans start and end
    on a word, neither touches a protected token, the two sides are not the same string, and at least one
    of its links is `sure` (found in both directions), which keeps the noisier grown links from carrying
    a phrase on their own.
    """
    m2e: dict[int, set[int]] = defaultdict(set)
    e2m: dict[int, set[int]] = defaultdict(set)
    for i, j in links:
        m2e[i].add(j)
        e2m[j].add(i)
    out = []
    n = len(matrix.tokens)
    for i1 in range(n):
        if not matrix.word[i1]:
            continue
        for i2 in range(i1, min(n, i1 + 2 * max_words)):
            if matrix.protected[i2]:
                break
            if sum(matrix.word[i1:i2 + 1]) > max_words:
                break
            if not matrix.word[i2]:
                continue
            targets = set().union(*(m2e[i] for i in range(i1, i2 + 1)))
            if not targets:
                continue
            j1, j2 = min(targets), max(targets)
            if j2 - j1 + 1 > 2 * max_words + 1 or sum(embedded.word[j1:j2 + 1]) > 2 * max_words:
                continue
            if not (embedded.word[j1] and embedded.word[j2]) or any(embedded.protected[j1:j2 + 1]):
                continue
            if any(not i1 <= i <= i2 for j in range(j1, j2 + 1) for i in e2m[j]):
                continue
            if not any((i, j) in sure for i in range(i1, i2 + 1) for j in m2e[i]):
                continue
            text = embedded.text[embedded.starts[j1]:embedded.ends[j2]]
            if text.casefold() == matrix.text[matrix.starts[i1]:matrix.ends[i2]].casefold():
                continue
            tokens = tuple((embedded.tokens[j], embedded.tag(j)) for j in range(j1, j2 + 1))
            out.append(Replacement(i1, i2 + 1, text, tokens, (j1, j2)))
    return out


def _cmi_after(w_matrix: int, w_embedded: int) -> float:
    total = w_matrix + w_embedded
    return 100.0 * (1.0 - max(w_matrix, w_embedded) / total) if total else 0.0


def switch_alignment(
    matrix: Sentence,
    embedded: Sentence,
    links: list[tuple[int, int]],
    sure: set[tuple[int, int]],
    config: CodeSwitchConfig,
    rng: np.random.Generator,
    truecase: Truecaser,
) -> tuple[list[Replacement] | None, str]:
    """Choose phrase pairs in random order until the CMI target (or switch rate) is met, never past the
    upper bound and never letting the embedded language outnumber the matrix."""
    if not links:
        return None, "empty_alignment"
    candidates = phrase_pairs(matrix, embedded, links, sure, config.max_phrase_words)
    if not candidates:
        return None, "no_switchable_span"
    low, high = config.target_cmi
    total_words = matrix.n_words()
    target = float(rng.uniform(low, high))
    need_words = int(np.ceil(config.switch_rate * total_words)) if config.switch_rate else None
    used_m = np.zeros(len(matrix.tokens), dtype=bool)
    used_e = np.zeros(len(embedded.tokens), dtype=bool)
    w_m, w_e = total_words, 0
    chosen: list[Replacement] = []
    overshoot = False
    for idx in rng.permutation(len(candidates)):
        rep = candidates[idx]
        j1, j2 = rep.e_span
        if used_m[rep.m_start:rep.m_end].any() or used_e[j1:j2 + 1].any():
            continue
        new_m = w_m - sum(matrix.word[rep.m_start:rep.m_end])
        new_e = w_e + sum(embedded.word[j1:j2 + 1])
        if new_e >= new_m or (need_words is None and _cmi_after(new_m, new_e) > high) or (
            need_words is not None and total_words - new_m > need_words
        ):
            overshoot = True
            continue
        chosen.append(_adjust_case(rep, matrix, j1 == next(k for k, w in enumerate(embedded.word) if w), truecase))
        used_m[rep.m_start:rep.m_end] = True
        used_e[j1:j2 + 1] = True
        w_m, w_e = new_m, new_e
        if (need_words is None and _cmi_after(w_m, w_e) >= target) or (
            need_words is not None and total_words - w_m >= need_words
        ):
            break
    if not chosen:
        return None, "cmi_band_unreachable" if overshoot else "no_switchable_span"
    if need_words is None and _cmi_after(w_m, w_e) < low:
        return None, "cmi_band_unreachable"
    return chosen, ""


def switch_dictionary(
    matrix: Sentence,
    lexicon: dict[str, dict[str, float]],
    embedded_lang: str,
    config: CodeSwitchConfig,
    rng: np.random.Generator,
    truecase: Truecaser,
) -> tuple[list[Replacement] | None, str]:
    """CoSDA-ML: switch the sentence with probability `ratio`, each word with probability `cross`."""
    if rng.random() >= config.ratio:
        return None, "not_selected"
    if not lexicon:
        return None, "empty_lexicon"
    chosen = []
    for k, token in enumerate(matrix.tokens):
        if not matrix.word[k]:
            continue
        options = lexicon.get(token.casefold())
        if not options or rng.random() >= config.cross:
            continue
        words = sorted(options)
        weights = np.array([options[w] for w in words])
        translation = truecase.surface(words[int(rng.choice(len(words), p=weights / weights.sum()))])
        rep = Replacement(k, k + 1, translation, tuple((t, embedded_lang if not is_punctuation_token(t) else UNIV)
                                                        for t in segment_words(translation)))
        chosen.append(_adjust_case(rep, matrix, False, truecase))
    if not chosen:
        return None, "no_lexicon_entry"
    return chosen, ""


# --- user-supplied tables ----------------------------------------------------------------------------


def _read_table(path: str, columns: list[str]) -> pa.Table:
    """A Parquet file, or a TSV with a header row, with at least the named string columns."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"codeswitch: table {path} does not exist")
    if p.suffix == ".parquet":
        table = pq.read_table(p)
    else:
        with p.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        names = list(rows[0].keys()) if rows else columns
        table = pa.table({c: [r.get(c) for r in rows] for c in names})
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"codeswitch: table {path} lacks column(s) {missing}; it has {table.column_names}")
    return table


class EntityLabels:
    """Entity labels per language from a user table (id, lang, label), indexed on first use per language.

    Language codes may be ISO 639-1 (Wikidata's `de`) or 639-3 (`deu`); both map to the same key.
    """

    def __init__(self, path: str, max_words: int):
        table = _read_table(path, ["id", "lang", "label"])
        self.max_words = max_words
        ids = table.column("id").to_pylist()
        langs = table.column("lang").to_pylist()
        labels = table.column("label").to_pylist()
        self._rows: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for qid, lang, label in zip(ids, langs, labels):
            if qid and lang and label and label.strip():
                self._rows[markup_tag(str(lang))].append((str(qid), str(label).strip()))
        self._mentions: dict[str, dict[tuple[str, ...], str]] = {}

    def mentions(self, lang: str) -> dict[tuple[str, ...], str]:
        """Casefolded token sequence of a label -> entity id (the smallest id when labels collide)."""
        key = markup_tag(lang)
        if key not in self._mentions:
            index: dict[tuple[str, ...], str] = {}
            for qid, label in sorted(self._rows.get(key, [])):
                folded = tuple(t.casefold() for t in segment_words(label))
                if 0 < len(folded) <= self.max_words:
                    index.setdefault(folded, qid)
            self._mentions[key] = index
        return self._mentions[key]

    def labels(self, lang: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for qid, label in sorted(self._rows.get(markup_tag(lang), [])):
            out.setdefault(qid, label)
        return out


def switch_entities(
    matrix: Sentence, embedded_lang: str, entities: EntityLabels, labels: dict[str, str]
) -> tuple[list[Replacement] | None, str]:
    """EntityCS: replace every entity mention (longest match first) by its embedded-language label."""
    index = entities.mentions(matrix.lang)
    folded = matrix.folded
    chosen = []
    k = 0
    n = len(folded)
    while k < n:
        hit = None
        if matrix.word[k]:
            for length in range(min(entities.max_words, n - k), 0, -1):
                span = range(k, k + length)
                if any(matrix.protected[j] for j in span) or not matrix.word[k + length - 1]:
                    continue
                qid = index.get(tuple(folded[k:k + length]))
                if qid is not None:
                    hit = (length, qid)
                    break
        if hit is None:
            k += 1
            continue
        length, qid = hit
        label = labels.get(qid)
        if label is None:
            return None, "entity_label_missing"
        tokens = tuple((t, embedded_lang if not is_punctuation_token(t) else UNIV) for t in segment_words(label))
        rep = Replacement(k, k + length, label, tokens)
        if k == next(j for j, w in enumerate(matrix.word) if w) and _is_cased_upper(matrix.tokens[k][:1]):
            rep = Replacement(k, k + length, _capitalise(label), ((_capitalise(tokens[0][0]), tokens[0][1]),) + tokens[1:])
        chosen.append(rep)
        k += length
    if not chosen:
        return None, "no_entity"
    return chosen, ""


def load_lexicon(path: str) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """User lexicon: (matrix tag, embedded tag) -> casefolded word -> translation -> weight."""
    table = _read_table(path, ["lang", "word", "embedded_lang", "translation"])
    probs = table.column("prob").to_pylist() if "prob" in table.column_names else [1.0] * table.num_rows
    out: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(dict)
    for lang, word, emb, translation, prob in zip(
        table.column("lang").to_pylist(), table.column("word").to_pylist(),
        table.column("embedded_lang").to_pylist(), table.column("translation").to_pylist(), probs,
    ):
        if lang and word and emb and translation:
            weight = float(prob) if prob not in (None, "") else 1.0
            if weight > 0:
                out[(markup_tag(lang), markup_tag(emb))].setdefault(word.casefold(), {})[translation] = weight
    return dict(out)


# --- one language pair -------------------------------------------------------------------------------


@dataclass
class Resources:
    """Tables a worker loads once (DoFn.setup)."""

    entities: EntityLabels | None = None
    lexicon: dict[tuple[str, str], dict[str, dict[str, float]]] | None = None

    @classmethod
    def from_config(cls, config: CodeSwitchConfig) -> "Resources":
        entities = EntityLabels(config.entity_table, config.max_entity_words) if config.entity_table else None
        lexicon = load_lexicon(config.lexicon_path) if config.lexicon_path else None
        return cls(entities, lexicon)


@dataclass
class GroupResult:
    rows: list[dict] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator that depends only on the seed and the sample's identity, never on worker or order."""
    digest = xxhash.xxh64_intdigest("\x1f".join(map(str, keys)).encode(), seed=seed & 0xFFFFFFFFFFFFFFFF)
    return np.random.default_rng([seed & 0xFFFFFFFF, digest])


def _valid(pair: dict) -> bool:
    return all(isinstance(pair.get(k), str) and pair.get(k) for k in ("pair_id", "src_lang", "tgt_lang")) and all(
        isinstance(pair.get(k), str) for k in ("src_text", "tgt_text")
    )


def synthesize_group(language_pair: str, pairs: Iterable[dict], config: CodeSwitchConfig, resources: Resources) -> GroupResult:
    """Train the aligner on every pair of one language pair, then write the samples of each pair."""
    result = GroupResult()
    stats = result.stats
    prepared: list[tuple[dict, Sentence, Sentence]] = []
    for pair in sorted(pairs, key=lambda p: (str(p.get("pair_id")), str(p.get("src_text")), str(p.get("tgt_text")))):
        stats["pairs_in"] += 1
        if not _valid(pair):
            stats["skipped_bad_pair"] += 1
            continue
        if not pair["src_text"].strip() or not pair["tgt_text"].strip():
            stats["skipped_empty_text"] += 1
            continue
        src = tokenize(pair["src_text"], pair["src_lang"])
        tgt = tokenize(pair["tgt_text"], pair["tgt_lang"])
        if src is None or tgt is None:
            stats["skipped_tokenisation"] += 1
            continue
        if src.n_words() == 0 or tgt.n_words() == 0:
            stats["skipped_no_words"] += 1
            continue
        if same_language(src.lang, tgt.lang):
            stats["skipped_same_language"] += 1
            continue
        prepared.append((pair, src, tgt))
    if not prepared:
        return result

    methods = sorted(m for m, w in config.methods.items() if w > 0)
    weights = np.array([config.methods[m] for m in methods], dtype=np.float64)
    weights /= weights.sum()
    alignment: Alignment | None = None
    if "alignment" in methods or ("dictionary" in methods and resources.lexicon is None):
        alignment = align_corpus(
            [s.folded for _, s, _ in prepared],
            [t.folded for _, _, t in prepared],
            AlignerParams(model1_iterations=config.model1_iterations, iterations=config.aligner_iterations),
            lexicon_threshold=config.lexicon_threshold,
            lexicon_min_count=config.lexicon_min_count,
            lexicon_mask=([s.word for _, s, _ in prepared], [t.word for _, _, t in prepared]),
        )
        inter, union = alignment.agreement()
        stats["align_links"] += sum(len(x) for x in alignment.links)
        stats["align_agree_links"] += inter
        stats["align_union_links"] += union
    truecasers = {
        "src": Truecaser(s for _, s, _ in prepared),
        "tgt": Truecaser(t for _, _, t in prepared),
    }
    entity_labels: dict[str, dict[str, str]] = {}

    for index, (pair, src, tgt) in enumerate(prepared):
        links = alignment.links[index] if alignment else []
        sure = set(alignment.forward[index]) & set(alignment.backward[index]) if alignment else set()
        sides = ["src", "tgt"] if config.matrix == "both" else [config.matrix]
        pair_rng = _rng(config.seed, pair["pair_id"], "sides")
        first = int(pair_rng.integers(len(sides)))
        seen_texts: set[str] = set()
        for k in range(config.max_samples_per_pair):
            side = sides[(first + k) % len(sides)]
            matrix, embedded = (src, tgt) if side == "src" else (tgt, src)
            rng = _rng(config.seed, pair["pair_id"], k)
            method = methods[int(rng.choice(len(methods), p=weights))]
            embedded_truecase = truecasers["tgt" if side == "src" else "src"]
            if method == "alignment":
                if side == "src":
                    oriented, oriented_sure = links, sure
                else:
                    oriented, oriented_sure = [(j, i) for i, j in links], {(j, i) for i, j in sure}
                reps, reason = switch_alignment(
                    matrix, embedded, oriented, oriented_sure, config, rng, embedded_truecase
                )
            elif method == "dictionary":
                if resources.lexicon is not None:
                    lexicon = resources.lexicon.get((markup_tag(matrix.lang), markup_tag(embedded.lang)), {})
                else:
                    lexicon = alignment.lexicon_src_tgt if side == "src" else alignment.lexicon_tgt_src
                reps, reason = switch_dictionary(matrix, lexicon, embedded.lang, config, rng, embedded_truecase)
            else:
                if embedded.lang not in entity_labels:
                    entity_labels[embedded.lang] = resources.entities.labels(embedded.lang)
                reps, reason = switch_entities(matrix, embedded.lang, resources.entities, entity_labels[embedded.lang])
            if reps is None:
                stats[f"skipped_{reason}"] += 1
                continue
            sample = render(matrix, reps, embedded.lang)
            if sample.text in seen_texts:
                stats["skipped_duplicate_sample"] += 1
                continue
            seen_texts.add(sample.text)
            metrics = sample_metrics([lang for _, lang in sample.tokens])
            result.rows.append(
                {
                    "sample_id": xxhash.xxh64_hexdigest(f"{pair['pair_id']}\x1f{k}\x1f{config.seed}".encode()),
                    "pair_id": pair["pair_id"],
                    "pair": language_pair,
                    "method": method,
                    "matrix_lang": matrix.lang,
                    "embedded_lang": embedded.lang,
                    "text": sample.text,
                    "markup": sample.markup,
                    "tokens": [{"token": t, "lang": lang} for t, lang in sample.tokens],
                    "n_spans": sample.n_spans,
                    "n_switched": sample.n_switched,
                    **metrics.as_dict(),
                }
            )
            stats["samples"] += 1
            stats[f"samples_{method}"] += 1
            stats[cmi_bin(metrics.cmi)] += 1
    return result


# --- Beam glue ---------------------------------------------------------------------------------------


class _KeyByLanguagePair(beam.DoFn):
    def __init__(self):
        self.counters = Counters(STAGE)

    def process(self, pair: dict) -> Iterator:
        key = pair.get("pair") if isinstance(pair, dict) else None
        if not isinstance(key, str) or not key:
            self.counters.inc("skipped_bad_pair")
            yield beam.pvalue.TaggedOutput("stats", ((STAGE, "und", "skipped_bad_pair"), 1))
            return
        yield key, pair


class _SwitchLanguagePair(beam.DoFn):
    def __init__(self, config: CodeSwitchConfig):
        self.config = config
        self.counters = Counters(STAGE)
        self.resources: Resources | None = None

    def setup(self) -> None:
        self.resources = Resources.from_config(self.config)

    def process(self, element: tuple[str, Iterable[dict]]) -> Iterator:
        language_pair, pairs = element
        result = synthesize_group(language_pair, pairs, self.config, self.resources)
        for name, count in sorted(result.stats.items()):
            self.counters.inc(name, count)
            yield beam.pvalue.TaggedOutput("stats", ((STAGE, language_pair, name), count))
        yield from result.rows


class SynthesizeCodeSwitch(beam.PTransform):
    """Mined bitext pairs (BITEXT_SCHEMA dicts) -> {"codeswitch": CODESWITCH_SCHEMA rows, "stats": counts}."""

    TABLES = {"codeswitch": TableSpec(CODESWITCH_SCHEMA, "codeswitch", sort_fields=("sample_id",))}

    def __init__(self, config: CodeSwitchConfig):
        super().__init__()
        self.config = config

    def expand(self, pairs):
        keyed = pairs | "KeyByLanguagePair" >> beam.ParDo(_KeyByLanguagePair()).with_outputs("stats", main="keyed")
        switched = (
            keyed.keyed
            | "GroupByLanguagePair" >> beam.GroupByKey()
            | "Switch" >> beam.ParDo(_SwitchLanguagePair(self.config)).with_outputs("stats", main="codeswitch")
        )
        stats = (keyed.stats, switched.stats) | "FlattenStats" >> beam.Flatten() | "SumStats" >> beam.CombinePerKey(sum)
        return {"codeswitch": switched.codeswitch, "stats": stats}
