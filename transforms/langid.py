"""Language ID with fastText: ISO 639-3 language, ISO 15924 script, score and the `lang_Script` partition.

The bundled model is fastText's `lid.176.ftz` (transforms/models/NOTICE.md). Users who have `lid.176.bin`
or GlotLID's `model_v3.bin` pass its path; GlotLID's labels (`fra_Latn`) already carry ISO 639-3 codes.
The script is always measured from the text's own characters, not taken from the label.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import apache_beam as beam

from transforms.config import LangIdConfig
from transforms.core import Counters
from transforms.text import script_of

DEFAULT_MODEL = Path(__file__).parent / "models" / "lid.176.ftz"
UNDETERMINED = "und"

# lid.176 labels are Wikipedia language codes: mostly ISO 639-1, some ISO 639-3, a few neither. The
# two-letter ones map through ISO 639-2/3 as usual (macrolanguages stay macrolanguages: ar -> ara,
# fa -> fas, ms -> msa). These are the labels where the usual mapping would be wrong or impossible:
LID176_EXCEPTIONS = {
    "zh": "cmn",  # lid.176 has separate `yue` and `wuu`; its `zh` is Mandarin in practice (FineWeb-2: cmn_Hani)
    "sh": "hbs",  # Serbo-Croatian macrolanguage, not Serbian
    "als": "gsw",  # Wikipedia's `als` is Alemannic; ISO 639-3 `als` would be Tosk Albanian
    "bh": "bho",  # `bh` (Bihari) is an ISO 639-2 collective code; bh.wikipedia is written in Bhojpuri
    "eml": "egl",  # retired ISO 639-3 code (2009), split into egl/rgn; its Wikipedia is mostly Emilian
    "tl": "tgl",  # Tagalog; `fil` is the standardised register, lid.176 was trained on Tagalog Wikipedia
    "nah": "nah",  # Nahuatl languages: a collective code (ISO 639-5); lid.176 cannot tell the varieties apart
}
ISO639_1_TO_3 = {
    "af": "afr", "am": "amh", "an": "arg", "ar": "ara", "as": "asm", "av": "ava", "az": "aze", "ba": "bak",
    "be": "bel", "bg": "bul", "bn": "ben", "bo": "bod", "br": "bre", "bs": "bos", "ca": "cat", "ce": "che",
    "co": "cos", "cs": "ces", "cv": "chv", "cy": "cym", "da": "dan", "de": "deu", "dv": "div", "el": "ell",
    "en": "eng", "eo": "epo", "es": "spa", "et": "est", "eu": "eus", "fa": "fas", "fi": "fin", "fr": "fra",
    "fy": "fry", "ga": "gle", "gd": "gla", "gl": "glg", "gn": "grn", "gu": "guj", "gv": "glv", "he": "heb",
    "hi": "hin", "hr": "hrv", "ht": "hat", "hu": "hun", "hy": "hye", "ia": "ina", "id": "ind", "ie": "ile",
    "io": "ido", "is": "isl", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "km": "khm",
    "kn": "kan", "ko": "kor", "ku": "kur", "kv": "kom", "kw": "cor", "ky": "kir", "la": "lat", "lb": "ltz",
    "li": "lim", "lo": "lao", "lt": "lit", "lv": "lav", "mg": "mlg", "mk": "mkd", "ml": "mal", "mn": "mon",
    "mr": "mar", "ms": "msa", "mt": "mlt", "my": "mya", "ne": "nep", "nl": "nld", "nn": "nno", "no": "nor",
    "oc": "oci", "or": "ori", "os": "oss", "pa": "pan", "pl": "pol", "ps": "pus", "pt": "por", "qu": "que",
    "rm": "roh", "ro": "ron", "ru": "rus", "sa": "san", "sc": "srd", "sd": "snd", "si": "sin", "sk": "slk",
    "sl": "slv", "so": "som", "sq": "sqi", "sr": "srp", "su": "sun", "sv": "swe", "sw": "swa", "ta": "tam",
    "te": "tel", "tg": "tgk", "th": "tha", "tk": "tuk", "tr": "tur", "tt": "tat", "ug": "uig", "uk": "ukr",
    "ur": "urd", "uz": "uzb", "vi": "vie", "vo": "vol", "wa": "wln", "yi": "yid", "yo": "yor",
}


@lru_cache(maxsize=4096)
def map_label(label: str) -> tuple[str, str | None]:
    """A model label -> (ISO 639-3 code, script named by the label or None); cached: a model has few labels.

    Handles lid.176 (`__label__fr`), GlotLID (`__label__fra_Latn`) and bare codes.
    """
    code = label.removeprefix("__label__")
    if "_" in code:  # GlotLID
        language, script = code.split("_", 1)
        return language.lower(), script
    if code in LID176_EXCEPTIONS:
        return LID176_EXCEPTIONS[code], None
    if len(code) == 2:
        return ISO639_1_TO_3.get(code, UNDETERMINED), None
    return code.lower(), None


def partition_key(language: str, script: str) -> str:
    return f"{language}_{script}"


class LanguageIdentifier:
    """fastText LID on batches of texts; pure Python, usable inside or outside Beam."""

    def __init__(self, model_path: str | Path | None = None, max_chars: int = 10_000):
        import fasttext

        path = Path(model_path) if model_path else DEFAULT_MODEL
        if not path.is_file():
            raise FileNotFoundError(f"language-ID model not found: {path}")
        self.model = fasttext.load_model(str(path))
        self.max_chars = max_chars
        self.model_name = path.name

    def predict(self, texts: list[str]) -> list[tuple[str, str, float]]:
        """(language, script, score) per text. Empty or letterless text is `und` with score 0."""
        return [(best[0][0], script_of(text), best[0][1]) if best else (UNDETERMINED, "Zyyy", 0.0)
                for text, best in zip(texts, self.top(texts, 1))]

    def top(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        """The k most probable (language, probability) of each text; [] for empty or letterless text."""
        cleaned = [" ".join(t[: self.max_chars].split()) for t in texts]
        results: list[list[tuple[str, float]]] = [[] for _ in texts]
        todo = [i for i, t in enumerate(cleaned) if t]
        if todo:
            labels, scores = self.model.predict([cleaned[i] for i in todo], k=k)
            for i, labs, probs in zip(todo, labels, scores):
                results[i] = [(map_label(lab)[0], min(max(float(p), 0.0), 1.0)) for lab, p in zip(labs, probs)]
        return results


class _LanguageIdFn(beam.DoFn):
    def __init__(self, config: LangIdConfig, model_path: str | None):
        self.config = config
        self.model_path = model_path

    def setup(self):
        self.lid = LanguageIdentifier(self.model_path, self.config.max_chars)
        self.counters = Counters("langid")

    def process(self, batch: list[dict]):
        for doc, (language, script, score) in zip(batch, self.lid.predict([d["text"] for d in batch])):
            if language != UNDETERMINED and score < self.config.threshold(language, script):
                self.counters.inc("below_min_score")
                language = UNDETERMINED
            doc = dict(doc, language=language, script=script, language_score=score)
            doc["partition"] = partition_key(language, script)
            self.counters.inc("documents")
            yield doc


class LanguageId(beam.PTransform):
    """Label every document; drops nothing. Uncertain documents become `und_<Script>` (as mC4 does)."""

    def __init__(self, config: LangIdConfig, model_path: str | None = None):
        super().__init__()
        self.config = config
        self.model_path = model_path

    def expand(self, documents):
        labelled = (
            documents
            | "Batch" >> beam.BatchElements(min_batch_size=16, max_batch_size=self.config.batch_size)
            | "Predict" >> beam.ParDo(_LanguageIdFn(self.config, self.model_path))
        )
        return {"documents": labelled}
