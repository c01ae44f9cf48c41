"""Code-mixing metrics over language-tagged tokens: CMI, M-index, I-index, burstiness, language entropy.

Definitions follow anchors.md section 3 (Gambäck & Das 2014 for CMI; Barnett et al. 2000 for the M-index;
Guzmán et al. 2017 for the I-index and burstiness). Language-independent tokens (punctuation, numbers,
URLs) carry the tag `UNIV`: they count in n for CMI and are dropped before every span-based measure, so
"EN UNIV EN" is one English span with no switch point.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

UNIV = "univ"


def _is_univ(tag: str) -> bool:
    return tag.lower() == UNIV


@dataclass(frozen=True)
class MixingMetrics:
    cmi: float
    m_index: float
    i_index: float
    burstiness: float
    entropy: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def cmi(tags: Sequence[str]) -> float:
    """Code-Mixing Index: 100 × (1 − max_i w_i / (n − u)), 0 when every token is language-independent."""
    n = len(tags)
    counts = Counter(t for t in tags if not _is_univ(t))
    u = n - sum(counts.values())
    if n <= u:
        return 0.0
    return 100.0 * (1.0 - max(counts.values()) / (n - u))


def _shares(counts: Counter) -> np.ndarray:
    total = sum(counts.values())
    return np.array([c / total for c in counts.values()], dtype=np.float64) if total else np.zeros(0)


def m_index(counts: Counter) -> float:
    """Multilingual index: 0 for one language, 1 for k languages in equal shares."""
    p = _shares(counts)
    k = len(p)
    if k < 2:
        return 0.0
    s = float(np.sum(p * p))
    return (1.0 - s) / ((k - 1) * s)


def entropy(counts: Counter) -> float:
    """Shannon entropy (bits) of the language distribution of the tagged tokens."""
    p = _shares(counts)
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p))) if len(p) else 0.0


def language_spans(tags: Sequence[str]) -> list[int]:
    """Lengths of maximal same-language runs once language-independent tokens are removed."""
    spans: list[int] = []
    previous = None
    for tag in tags:
        if _is_univ(tag):
            continue
        if tag == previous:
            spans[-1] += 1
        else:
            spans.append(1)
            previous = tag
    return spans


def switch_points(tags: Sequence[str]) -> tuple[int, int]:
    """(switch points, language tokens) with language-independent tokens dropped."""
    spans = language_spans(tags)
    return max(len(spans) - 1, 0), sum(spans)


def i_index(tags: Sequence[str]) -> float:
    switches, n = switch_points(tags)
    return switches / (n - 1) if n > 1 else 0.0


def burstiness(span_lengths: Sequence[int]) -> float:
    """(σ − m) / (σ + m) of span lengths, with the sample standard deviation; 0 with fewer than 2 spans.

    The sample (n − 1) deviation is the one that reproduces the published test vector (anchors.md).
    """
    if len(span_lengths) < 2:
        return 0.0
    lengths = np.asarray(span_lengths, dtype=np.float64)
    sigma, mean = float(lengths.std(ddof=1)), float(lengths.mean())
    return (sigma - mean) / (sigma + mean)


def sample_metrics(tags: Sequence[str]) -> MixingMetrics:
    """All five metrics of one tagged sample."""
    counts = Counter(t for t in tags if not _is_univ(t))
    return MixingMetrics(
        cmi=cmi(tags),
        m_index=m_index(counts),
        i_index=i_index(tags),
        burstiness=burstiness(language_spans(tags)),
        entropy=entropy(counts),
    )


def corpus_metrics(samples: Iterable[Sequence[str]]) -> dict[str, float]:
    """Corpus-level figures: mean CMI over samples (Gambäck & Das's C_avg) and the pooled others.

    M-index and entropy use the language counts of all tokens; the I-index is all switch points over all
    possible ones (sum of n_s − 1); burstiness is over the spans of every sample.
    """
    counts: Counter = Counter()
    spans: list[int] = []
    cmis: list[float] = []
    switches = possible = 0
    for tags in samples:
        cmis.append(cmi(tags))
        counts.update(t for t in tags if not _is_univ(t))
        sample_spans = language_spans(tags)
        spans.extend(sample_spans)
        switches += max(len(sample_spans) - 1, 0)
        possible += max(sum(sample_spans) - 1, 0)
    if not cmis:
        return {"samples": 0, "cmi": 0.0, "m_index": 0.0, "i_index": 0.0, "burstiness": 0.0, "entropy": 0.0}
    return {
        "samples": len(cmis),
        "cmi": float(np.mean(cmis)),
        "m_index": m_index(counts),
        "i_index": switches / possible if possible else 0.0,
        "burstiness": burstiness(spans),
        "entropy": entropy(counts),
    }


def cmi_bin(value: float, width: int = 10) -> str:
    """Histogram bin name for the run summary, e.g. `cmi_20_30` (CMI of two languages is below 50)."""
    low = min(int(math.floor(value / width)) * width, 100 - width)
    return f"cmi_{low:02d}_{low + width:02d}"
