"""Build the sample corpus that `python -m pipelines.build` reads when no --input is given.

    python -m tools.make_sample [--out pipelines/sample] [--seed 0] [--data ../shared/data/tatoeba-dev]

Real Tatoeba sentences are grouped into documents of web-page length, then mixed with what real crawls
contain (duplicates, near duplicates, boilerplate, spam, very short pages, mixed-language pages, translated
pages, malformed records), so that every stage of the pipeline has work to do on a corpus that installs with
the package. Writes, deterministically for a given seed and data folder:

- ``sample.jsonl.gz``: one JSON object per line, ``{"id", "text", "url", "kind", "lang", "origin"}``. ``kind``
  says what the record was built to exercise, ``lang`` is the Tatoeba code its text came from (a gold label
  for clean documents), ``origin`` is the id of the record it was copied, edited or translated from;
- ``sample.warc.gz``: a small WARC of HTML pages wrapping some of the same documents in site chrome;
- ``README.md`` (counts per kind and per language) and ``NOTICE.md`` (attribution).
"""

from __future__ import annotations

import argparse
import gzip
import html
import io
import json
import math
import os
import random
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from fastwarc.warc import WarcRecord, WarcRecordType

from transforms.text import is_punctuation_token, normalize_for_dedup, script_of, segment_words

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "pipelines" / "sample"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tatoeba-dev"

JSONL_NAME = "sample.jsonl.gz"
WARC_NAME = "sample.warc.gz"

# Clean documents per language: more for the languages that dominate real crawls. The English pool is the
# union of the English sides of every file, so it can feed many more documents than one 500-line file.
CLEAN_DOCS: dict[str, int] = {
    "eng": 300,
    "fra": 90, "deu": 90, "spa": 90, "rus": 80,
    "cmn": 60, "jpn": 60, "por": 60, "ita": 60,
    "nld": 50, "pol": 50, "tur": 50, "ara": 45, "kor": 45,
    "vie": 25, "ukr": 25, "ces": 25, "swe": 25, "fin": 25, "hun": 25, "ell": 25, "heb": 25, "hin": 25,
    "ind": 25, "ron": 25, "bul": 25, "dan": 25,
    "cat": 20, "pes": 20, "tha": 16,
    "lit": 15, "slk": 15, "est": 15, "ben": 15, "urd": 15,
    "hrv": 12, "srp": 12, "hye": 10, "eus": 12, "kat": 8,
}
# Languages the USE-m encoder covers (environment.md): each gets documents with an English translation.
PARALLEL_LANGS = ("ara", "cmn", "deu", "fra", "ita", "jpn", "kor", "nld", "pol", "por", "rus", "spa", "tha", "tur")
PARALLEL_DOCS_PER_LANG = 4
# Written without spaces between sentences.
NO_SPACE_JOIN = frozenset({"cmn", "jpn"})
BCP47 = {
    "eng": "en", "fra": "fr", "deu": "de", "spa": "es", "rus": "ru", "cmn": "zh", "jpn": "ja", "por": "pt",
    "ita": "it", "nld": "nl", "pol": "pl", "tur": "tr", "ara": "ar", "kor": "ko", "vie": "vi", "ukr": "uk",
    "ces": "cs", "swe": "sv", "fin": "fi", "hun": "hu", "ell": "el", "heb": "he", "hin": "hi", "ind": "id",
    "ron": "ro", "bul": "bg", "dan": "da", "cat": "ca", "pes": "fa", "tha": "th", "lit": "lt", "slk": "sk",
    "est": "et", "ben": "bn", "urd": "ur", "hrv": "hr", "srp": "sr", "hye": "hy", "eus": "eu", "kat": "ka",
}
RTL = frozenset({"ara", "heb", "pes", "urd"})

# How many records of each synthetic kind (besides clean and parallel documents).
N_EXACT_SOURCES = 70
N_NEAR_DUP = 110
N_BOILERPLATE = 70
N_SPAM = 70
N_SHORT = 110
N_MIXED = 60
N_WARC_PAGES = 20
NEAR_DUP_MIN_JACCARD = 0.75
SHINGLE = 5
LONG_SENTENCE_WORDS = 8
OVERSIZE_CHARS = 1_050_000  # just over the ingest default max_doc_chars (1,000,000)

CRAWL_DATE = datetime(2018, 11, 17, 3, 0, 0, tzinfo=timezone.utc)


# --- Tatoeba pools ------------------------------------------------------------------------------------


@dataclass
class Pool:
    """One language's sentences (deduplicated, file order) with their English sides and word counts."""

    lang: str
    sentences: list[str]
    english: list[str]
    words: list[int]

    def draw(self, rng: random.Random, target_words: int, distinct_english: bool = False) -> list[int]:
        """Indices of distinct sentences, in random order, until `target_words` words are reached.

        Shorter sentences are kept with probability words / LONG_SENTENCE_WORDS: Tatoeba's many two- and
        three-word sentences would otherwise give documents more punctuation per word than web text has.
        """
        chosen: list[int] = []
        seen_en: set[str] = set()
        total = 0
        for i in lazy_permutation(rng, len(self.sentences)):
            if rng.random() * LONG_SENTENCE_WORDS > self.words[i]:
                continue
            if distinct_english:
                if self.english[i] in seen_en:
                    continue
                seen_en.add(self.english[i])
            chosen.append(i)
            total += self.words[i]
            if total >= target_words:
                break
        return chosen


def lazy_permutation(rng: random.Random, n: int) -> Iterator[int]:
    """0..n-1 in random order, drawn one at a time (Fisher-Yates over a sparse swap map), so taking k
    items costs O(k) even from the 40k-sentence English pool."""
    swapped: dict[int, int] = {}
    for i in range(n):
        j = rng.randrange(i, n)
        yield swapped.get(j, j)
        swapped[j] = swapped.get(i, i)


def count_words(text: str, script: str | None = None) -> int:
    """Words as the quality filters count them: ICU for zh/ja/th, punctuation tokens excluded."""
    return sum(1 for tok in segment_words(text, script) if not is_punctuation_token(tok))


def _pool(lang: str, sentences: list[str], english: list[str]) -> Pool:
    script = script_of(" ".join(sentences[:200]))  # one script per file: skip detecting it per sentence
    return Pool(lang, sentences, english, [count_words(s, script) for s in sentences])


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2 and parts[0].strip() and parts[1].strip():
                pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


@lru_cache(maxsize=2)
def load_pools(data_dir: Path) -> dict[str, Pool]:
    """Pools for every language in CLEAN_DOCS; English is the union of all files' English sides.

    Cached: segmenting the 60k sentences is most of a build's time, and pools are never modified."""
    if not data_dir.is_dir():
        raise SystemExit(f"make_sample: Tatoeba folder not found: {data_dir} (pass --data)")
    pools: dict[str, Pool] = {}
    english: dict[str, None] = {}
    for path in sorted(data_dir.glob("*-eng.tsv")):
        code = path.name.split("-", 1)[0]
        pairs = _read_pairs(path)
        for _, en in pairs:
            english.setdefault(en)
        if code in CLEAN_DOCS:
            seen: dict[str, str] = {}
            for src, en in pairs:
                seen.setdefault(src, en)
            pools[code] = _pool(code, list(seen), list(seen.values()))
    missing = sorted(set(CLEAN_DOCS) - set(pools) - {"eng"})
    if missing:
        raise SystemExit(f"make_sample: {data_dir} lacks {', '.join(f'{m}-eng.tsv' for m in missing)}")
    en_sents = list(english)
    pools["eng"] = _pool("eng", en_sents, en_sents)
    return pools


# --- documents ----------------------------------------------------------------------------------------


@dataclass
class Doc:
    """A document as paragraphs of sentences, so edits can work on sentences and re-render."""

    lang: str
    paragraphs: list[list[str]]
    sep: str = "\n"
    header: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)
    words: int = 0

    def render(self) -> str:
        joiner = "" if self.lang in NO_SPACE_JOIN else " "
        body = [joiner.join(p) for p in self.paragraphs if p]
        return self.sep.join(self.header + body + self.footer)


def rng_for(seed: int, *parts: str) -> random.Random:
    """An independent, stable random stream per purpose (string seeds hash with SHA-512, not hash())."""
    return random.Random("/".join([str(seed), *parts]))


def doc_length(rng: random.Random, pool: Pool, low: int = 70, median: int = 170) -> int:
    """Target word count: log-normal around `median`, bounded so small pools are not exhausted."""
    target = int(math.exp(rng.gauss(math.log(median), 0.45)))
    cap = max(low, sum(pool.words) // 4)
    return max(low, min(target, 650, cap))


def paragraph_sizes(rng: random.Random, n: int) -> list[int]:
    """Sentences per paragraph (2-6) for `n` sentences."""
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(min(rng.randint(2, 6), n - sum(sizes)))
    return sizes


def split_by(sizes: list[int], items: list[str]) -> list[list[str]]:
    out, i = [], 0
    for n in sizes:
        out.append(items[i:i + n])
        i += n
    return out


def make_doc(rng: random.Random, pool: Pool, target_words: int) -> Doc:
    idx = pool.draw(rng, target_words)
    sep = "\n" if rng.random() < 0.7 else "\n\n"
    paragraphs = split_by(paragraph_sizes(rng, len(idx)), [pool.sentences[i] for i in idx])
    return Doc(pool.lang, paragraphs, sep, words=sum(pool.words[i] for i in idx))


def shingles(text: str, n: int = SHINGLE) -> set[tuple[str, ...]]:
    """Word n-grams of the dedup-normalised text (the features MinHash dedup compares)."""
    words = [normalize_for_dedup(t) for t in segment_words(text) if not is_punctuation_token(t)]
    words = [w for w in words if w]
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / max(1, len(sa | sb))


# --- localized page chrome (our own wording) -----------------------------------------------------------

CHROME: dict[str, dict[str, Any]] = {
    "eng": {
        "nav": ["Home", "News", "World", "Business", "Culture", "Sport", "Travel", "Contact"],
        "skip": "Skip to main content",
        "cookie": ["This website uses cookies to improve your experience.",
                   "By continuing to browse the site you agree to our use of cookies and our cookie policy.",
                   "Accept all", "Manage settings"],
        "js": "Please enable JavaScript in your browser to see the comments.",
        "footer": ["© 2018 {site}. All rights reserved.", "Privacy Policy | Terms of Use | Contact us",
                   "Follow us on Facebook and Twitter"],
        "share": ["Share this article", "Facebook", "Twitter", "Email", "Print"],
        "related": "Related articles",
        "more": "Read more",
        "comment": "You must be logged in to post a comment.",
        "posted": "Posted on {date} by {author}",
        "next": "Next",
        "search": "Search",
    },
    "fra": {
        "nav": ["Accueil", "Actualités", "Monde", "Économie", "Culture", "Sport", "Voyages", "Contact"],
        "skip": "Aller au contenu principal",
        "cookie": ["Ce site utilise des cookies pour améliorer votre expérience.",
                   "En poursuivant votre navigation, vous acceptez l'utilisation des cookies.",
                   "Tout accepter", "Paramétrer"],
        "js": "Veuillez activer JavaScript dans votre navigateur pour voir les commentaires.",
        "footer": ["© 2018 {site}. Tous droits réservés.", "Mentions légales | Confidentialité | Contact",
                   "Suivez-nous sur Facebook et Twitter"],
        "share": ["Partager cet article", "Facebook", "Twitter", "E-mail", "Imprimer"],
        "related": "Articles similaires",
        "more": "Lire la suite",
        "comment": "Vous devez être connecté pour publier un commentaire.",
        "posted": "Publié le {date} par {author}",
        "next": "Suivant",
        "search": "Rechercher",
    },
    "deu": {
        "nav": ["Startseite", "Nachrichten", "Welt", "Wirtschaft", "Kultur", "Sport", "Reisen", "Kontakt"],
        "skip": "Zum Hauptinhalt springen",
        "cookie": ["Diese Website verwendet Cookies, um Ihr Erlebnis zu verbessern.",
                   "Wenn Sie die Seite weiter nutzen, stimmen Sie der Verwendung von Cookies zu.",
                   "Alle akzeptieren", "Einstellungen"],
        "js": "Bitte aktivieren Sie JavaScript in Ihrem Browser, um die Kommentare zu sehen.",
        "footer": ["© 2018 {site}. Alle Rechte vorbehalten.", "Impressum | Datenschutz | Kontakt",
                   "Folgen Sie uns auf Facebook und Twitter"],
        "share": ["Artikel teilen", "Facebook", "Twitter", "E-Mail", "Drucken"],
        "related": "Ähnliche Artikel",
        "more": "Weiterlesen",
        "comment": "Sie müssen angemeldet sein, um einen Kommentar zu schreiben.",
        "posted": "Veröffentlicht am {date} von {author}",
        "next": "Weiter",
        "search": "Suche",
    },
    "spa": {
        "nav": ["Inicio", "Noticias", "Mundo", "Economía", "Cultura", "Deportes", "Viajes", "Contacto"],
        "skip": "Saltar al contenido principal",
        "cookie": ["Este sitio web utiliza cookies para mejorar su experiencia.",
                   "Si continúa navegando, acepta el uso de cookies.",
                   "Aceptar todo", "Configurar"],
        "js": "Active JavaScript en su navegador para ver los comentarios.",
        "footer": ["© 2018 {site}. Todos los derechos reservados.", "Aviso legal | Privacidad | Contacto",
                   "Síguenos en Facebook y Twitter"],
        "share": ["Compartir este artículo", "Facebook", "Twitter", "Correo", "Imprimir"],
        "related": "Artículos relacionados",
        "more": "Leer más",
        "comment": "Debe iniciar sesión para publicar un comentario.",
        "posted": "Publicado el {date} por {author}",
        "next": "Siguiente",
        "search": "Buscar",
    },
    "rus": {
        "nav": ["Главная", "Новости", "В мире", "Экономика", "Культура", "Спорт", "Путешествия", "Контакты"],
        "skip": "Перейти к основному содержанию",
        "cookie": ["Этот сайт использует файлы cookie для улучшения работы.",
                   "Продолжая пользоваться сайтом, вы соглашаетесь на использование cookie.",
                   "Принять все", "Настройки"],
        "js": "Включите JavaScript в браузере, чтобы увидеть комментарии.",
        "footer": ["© 2018 {site}. Все права защищены.", "Политика конфиденциальности | Контакты",
                   "Мы в социальных сетях"],
        "share": ["Поделиться", "ВКонтакте", "Facebook", "Twitter", "Печать"],
        "related": "Похожие статьи",
        "more": "Читать далее",
        "comment": "Чтобы оставить комментарий, войдите на сайт.",
        "posted": "Опубликовано {date}, автор: {author}",
        "next": "Далее",
        "search": "Поиск",
    },
}

SITES = (
    "dailyharbor", "citynotes", "theweeklyledger", "morningpost-online", "lakeside-news", "openforum",
    "travelbits", "kitchen-diary", "bookcorner", "learnwithme", "northstar-media", "quietstreet",
    "greenvalley-blog", "metroreport", "studentlife", "homeandgarden", "techpulse", "familytable",
)
SECTIONS = ("news", "blog", "culture", "life", "travel", "forum", "story", "opinion", "education", "society")
AUTHORS = ("admin", "editor", "M. Laurent", "J. Novak", "A. Sato", "K. Demir", "R. Silva", "guest")


def chrome_for(lang: str) -> dict[str, Any]:
    return CHROME.get(lang, CHROME["eng"])


def make_url(rng: random.Random, lang: str, n: int, site: str | None = None) -> str:
    site = site or rng.choice(SITES)
    date = CRAWL_DATE - timedelta(days=rng.randint(30, 2500))
    tag = BCP47.get(lang, "int")
    return f"https://www.{site}.example/{tag}/{rng.choice(SECTIONS)}/{date:%Y/%m}/{n:05d}.html"


def post_date(rng: random.Random) -> str:
    return f"{CRAWL_DATE - timedelta(days=rng.randint(30, 2500)):%Y-%m-%d}"


# --- records ------------------------------------------------------------------------------------------


@dataclass
class Rec:
    """One output line. `origin` is another record's key until ids are assigned; `variant` names how a
    malformed line is broken."""

    key: str
    kind: str
    lang: str
    text: Any
    url: str
    origin: str | None = None
    doc: Doc | None = None
    variant: str | None = None


class Builder:
    """Builds every record of the sample from the pools, one seeded random stream per purpose."""

    def __init__(self, pools: dict[str, Pool], seed: int):
        self.pools = pools
        self.seed = seed
        self.records: list[Rec] = []
        self._n = 0

    def rng(self, *parts: str) -> random.Random:
        return rng_for(self.seed, *parts)

    def add(self, kind: str, lang: str, text: Any, url: str, **kw: Any) -> Rec:
        self._n += 1
        rec = Rec(f"{kind}:{self._n}", kind, lang, text, url, **kw)
        self.records.append(rec)
        return rec

    def weighted_langs(self, rng: random.Random, k: int, exclude: tuple[str, ...] = ()) -> list[str]:
        langs = [lang for lang in CLEAN_DOCS if lang not in exclude]
        return rng.choices(langs, weights=[CLEAN_DOCS[lang] for lang in langs], k=k)

    # clean documents, one stream per language so adding a language leaves the others unchanged
    def clean(self) -> None:
        for lang, n in CLEAN_DOCS.items():
            rng, pool = self.rng("clean", lang), self.pools[lang]
            for i in range(n):
                doc = make_doc(rng, pool, doc_length(rng, pool))
                self.add("clean", lang, doc.render(), make_url(rng, lang, i), doc=doc)

    def exact_dups(self) -> None:
        """Copies of clean pages at other URLs; a fifth differ only in case, spacing or quotes."""
        rng = self.rng("exact_dup")
        clean = [r for r in self.records if r.kind == "clean"]
        for src in rng.sample(clean, N_EXACT_SOURCES):
            copies = rng.choices((1, 2, 3, 4), weights=(60, 25, 10, 5))[0]
            for c in range(copies):
                text = src.text
                if rng.random() < 0.2:
                    text = self._cosmetic(rng, text)
                url = src.url.replace("https://www.", rng.choice(("http://", "https://m.", "https://amp.")))
                url += rng.choice(("", f"?utm_source=feed&utm_medium=rss&n={c}", f"?page=1&ref={c}"))
                self.add("exact_dup", src.lang, text, url, origin=src.key)

    @staticmethod
    def _cosmetic(rng: random.Random, text: str) -> str:
        """An edit that normalize_for_dedup undoes: case, doubled spaces, trailing spaces, typographic quotes."""
        choice = rng.randrange(3)
        if choice == 0:
            return text.upper() if rng.random() < 0.2 else text.replace(" ", "  ", 3)
        if choice == 1:
            return "\n".join(line + "  " for line in text.split("\n"))
        return text.replace("'", "’").replace(",", " ,")

    def near_dups(self) -> None:
        """Edited copies: a header/footer added, a sentence replaced or removed, two words swapped."""
        rng = self.rng("near_dup")
        clean = [r for r in self.records if r.kind == "clean" and r.doc.words >= 120]
        made = 0
        while made < N_NEAR_DUP:
            src = rng.choice(clean)
            for _ in range(6):
                doc = self._edit(rng, src.doc)
                text = doc.render()
                if text != src.text and jaccard(text, src.text) >= NEAR_DUP_MIN_JACCARD:
                    break
            else:
                continue
            self.add("near_dup", src.lang, text, make_url(rng, src.lang, 50_000 + made), origin=src.key)
            made += 1

    def _edit(self, rng: random.Random, src: Doc) -> Doc:
        doc = Doc(src.lang, [list(p) for p in src.paragraphs], src.sep)
        pool, ch = self.pools[src.lang], chrome_for(src.lang)
        ops = rng.sample(("header", "footer", "replace", "delete", "swap_words"), rng.randint(1, 3))
        for op in ops:
            p = rng.randrange(len(doc.paragraphs))
            s = rng.randrange(len(doc.paragraphs[p]))
            if op == "header":
                doc.header = [ch["posted"].format(date=post_date(rng), author=rng.choice(AUTHORS))]
            elif op == "footer":
                doc.footer = [rng.choice(ch["footer"]).format(site=rng.choice(SITES).title()), ch["comment"]]
            elif op == "replace":
                doc.paragraphs[p][s] = pool.sentences[rng.randrange(len(pool.sentences))]
            elif op == "delete" and len(doc.paragraphs[p]) > 1:
                del doc.paragraphs[p][s]
            elif op == "swap_words" and src.lang not in NO_SPACE_JOIN and src.lang != "tha":
                words = doc.paragraphs[p][s].split(" ")
                if len(words) > 3:
                    i = rng.randrange(len(words) - 2)
                    words[i], words[i + 1] = words[i + 1], words[i]
                    doc.paragraphs[p][s] = " ".join(words)
        return doc

    def boilerplate(self) -> None:
        """Pages where site chrome (menus, cookie banners, share buttons, footers) surrounds little text."""
        rng = self.rng("boilerplate")
        for i, lang in enumerate(self.weighted_langs(rng, N_BOILERPLATE)):
            ch, pool = chrome_for(lang), self.pools[lang]
            site = rng.choice(SITES)
            style = rng.choices(("article", "cookie_wall", "listing"), weights=(6, 2, 2))[0]
            lines = [ch["skip"]]
            lines += [" | ".join(ch["nav"])] if rng.random() < 0.5 else list(ch["nav"])
            lines.append(f"{ch['nav'][0]} › {rng.choice(ch['nav'][1:])}")
            if style == "article":
                doc = make_doc(rng, pool, rng.randint(40, 120))
                lines.append(ch["posted"].format(date=post_date(rng), author=rng.choice(AUTHORS)))
                lines += doc.render().split(doc.sep)
                lines += ch["share"] + [ch["related"]]
                lines += [pool.sentences[j] for j in pool.draw(rng, 25)]
                lines += [ch["comment"], ch["js"]]
            elif style == "listing":
                for j in pool.draw(rng, 60):
                    lines += [pool.sentences[j], f"{ch['more']}…", post_date(rng)]
                lines.append(" ".join(str(k) for k in range(1, 8)) + f" {ch['next']} »")
            else:
                lines += [ch["js"], ch["search"]]
            lines += ch["cookie"] + [f.format(site=site.title()) for f in ch["footer"]]
            self.add("boilerplate", lang, "\n".join(lines), make_url(rng, lang, 60_000 + i, site))

    def spam(self) -> None:
        """Keyword stuffing, repeated lines, lorem ipsum, leaked scripts, link farms, hashtag lists."""
        rng = self.rng("spam")
        makers: list[Callable[[random.Random], tuple[str, str]]] = [
            self._keyword_spam, self._repeated_lines, self._lorem_ipsum, self._script_dump,
            self._link_farm, self._hashtags,
        ]
        for i in range(N_SPAM):
            lang, text = makers[i % len(makers)](rng)
            self.add("spam", lang, text, make_url(rng, lang, 70_000 + i))

    def _keyword_spam(self, rng: random.Random) -> tuple[str, str]:
        lang = rng.choice(tuple(SPAM_KEYWORDS))
        heads, tails = SPAM_KEYWORDS[lang]
        words: list[str] = []
        length = rng.randint(120, 300)
        while len(words) < length:
            words += f"{rng.choice(heads)} {rng.choice(tails)}".split()
        return lang, " ".join(words)

    def _repeated_lines(self, rng: random.Random) -> tuple[str, str]:
        lang = self.weighted_langs(rng, 1)[0]
        pool = self.pools[lang]
        intro = [pool.sentences[j] for j in pool.draw(rng, 30)]
        promo = [pool.sentences[j] for j in pool.draw(rng, 12)]
        lines = intro + [promo[k % len(promo)] for k in range(rng.randint(15, 40))]
        return lang, "\n".join(lines)

    def _lorem_ipsum(self, rng: random.Random) -> tuple[str, str]:
        sentences = []
        for _ in range(rng.randint(8, 25)):
            words = [rng.choice(LOREM) for _ in range(rng.randint(6, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " + " ".join(sentences)
        return "lat", text

    def _script_dump(self, rng: random.Random) -> tuple[str, str]:
        lang = self.weighted_langs(rng, 1)[0]
        pool = self.pools[lang]
        lines = [pool.sentences[j] for j in pool.draw(rng, 20)]
        lines += [s.format(n=rng.randint(1, 99), id=rng.randint(10**6, 10**7)) for s in SCRIPT_LINES]
        lines.append(chrome_for(lang)["js"])
        return lang, "\n".join(lines)

    def _link_farm(self, rng: random.Random) -> tuple[str, str]:
        heads, tails = SPAM_KEYWORDS["eng"]
        lines = [f"» {rng.choice(heads).title()} {rng.choice(tails)} ... #{rng.randint(1, 999)}"
                 for _ in range(rng.randint(20, 50))]
        return "eng", "\n".join(lines)

    def _hashtags(self, rng: random.Random) -> tuple[str, str]:
        tags = [f"#{w}" for w in HASHTAGS]
        lines = [" ".join(rng.sample(tags, rng.randint(5, 12))) for _ in range(rng.randint(10, 30))]
        return "eng", "\n".join(lines)

    def short(self) -> None:
        """Pages with a line or three of text, and error pages: all under Gopher's 50-word minimum."""
        rng = self.rng("short")
        for i, lang in enumerate(self.weighted_langs(rng, N_SHORT)):
            pool = self.pools[lang]
            if rng.random() < 0.15:
                text = rng.choice(ERROR_PAGES)
                lang = "eng"
            else:
                idx = pool.draw(rng, rng.randint(4, 30))
                text = ("" if lang in NO_SPACE_JOIN else " ").join(pool.sentences[j] for j in idx)
            self.add("short", lang, text, make_url(rng, lang, 80_000 + i))

    def mixed(self) -> None:
        """Pages in two languages: blocks, alternating paragraphs, or sentences glossed in English."""
        rng = self.rng("mixed_language")
        neighbours = {"spa": "por", "por": "spa", "rus": "ukr", "ukr": "rus", "deu": "nld", "nld": "deu",
                      "cmn": "jpn", "jpn": "cmn", "hin": "urd", "urd": "hin", "hrv": "srp", "srp": "hrv",
                      "fra": "ita", "ita": "fra", "ces": "slk", "slk": "ces", "dan": "swe", "swe": "dan"}
        for i, first in enumerate(self.weighted_langs(rng, N_MIXED, exclude=("eng",))):
            second = neighbours.get(first, "eng") if rng.random() < 0.3 else "eng"
            style = "gloss" if second == "eng" and rng.random() < 0.3 else rng.choice(("blocks", "alternate"))
            a, b = self.pools[first], self.pools[second]
            if style == "gloss":
                idx = a.draw(rng, rng.randint(60, 160), distinct_english=True)
                lines = [f"{a.sentences[j]} ({a.english[j]})" for j in idx]
                text = "\n".join(lines)
            else:
                da = make_doc(rng, a, rng.randint(50, 150))
                db = make_doc(rng, b, rng.randint(50, 150))
                paras_a, paras_b = da.render().split(da.sep), db.render().split(db.sep)
                if style == "blocks":
                    paras = paras_a + paras_b
                else:
                    paras = [p for pair in zip(paras_a, paras_b) for p in pair]
                text = "\n".join(paras)
            self.add("mixed_language", f"{first}+{second}", text, make_url(rng, first, 90_000 + i))

    def parallel(self) -> None:
        """A page in X and its English version: the same Tatoeba pairs, in the same order and paragraphs."""
        for lang in PARALLEL_LANGS:
            rng, pool = self.rng("parallel", lang), self.pools[lang]
            for i in range(PARALLEL_DOCS_PER_LANG):
                idx = pool.draw(rng, max(60, doc_length(rng, pool, median=120)), distinct_english=True)
                sep = "\n" if rng.random() < 0.7 else "\n\n"
                sizes = paragraph_sizes(rng, len(idx))
                x_doc = Doc(lang, split_by(sizes, [pool.sentences[j] for j in idx]), sep)
                en_doc = Doc("eng", split_by(sizes, [pool.english[j] for j in idx]), sep)
                site = rng.choice(SITES)
                path = f"{rng.choice(SECTIONS)}/{post_date(rng).replace('-', '/')}/{i:03d}.html"
                x_rec = self.add("parallel", lang, x_doc.render(), f"https://{site}.example/{BCP47[lang]}/{path}")
                self.add("parallel", "eng", en_doc.render(), f"https://{site}.example/en/{path}", origin=x_rec.key)

    def oversize(self) -> None:
        """A mirrored archive page just over the ingest size limit (so its oversize rule fires)."""
        rng, pool = self.rng("oversize"), self.pools["eng"]
        doc = make_doc(rng, pool, 3000)
        block = doc.render()
        text = "\n".join([block] * (OVERSIZE_CHARS // (len(block) + 1) + 1))
        self.add("oversize", "eng", text, make_url(rng, "eng", 99_999))

    def malformed(self) -> None:
        """Lines a reader must quarantine or drop without stopping the run (see encode_line)."""
        rng = self.rng("malformed")
        pool = self.pools["fra"]
        text = "Café de la gare : la carte d'été. " + " ".join(pool.sentences[j] for j in pool.draw(rng, 40))
        url = make_url(rng, "fra", 99_000)
        for variant in ("truncated_json", "html_line", "json_array", "latin1_bytes", "no_text"):
            self.add("malformed", "fra", text, url, variant=variant)
        self.add("malformed", "fra", 12345, url)
        self.add("malformed", "fra", {"body": text}, url)
        self.add("malformed", "und", "", url)
        self.add("malformed", "und", " \n\t \u00a0\n ", url)

    def build(self) -> list[Rec]:
        self.clean()
        self.exact_dups()
        self.near_dups()
        self.boilerplate()
        self.spam()
        self.short()
        self.mixed()
        self.parallel()
        self.oversize()
        self.malformed()
        return self.records


SPAM_KEYWORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "eng": (("cheap", "best", "buy", "free", "discount", "top", "online", "fast"),
            ("flights", "hotels", "watches", "loans", "casino bonus", "followers", "pills", "car insurance")),
    "fra": (("pas cher", "meilleur", "acheter", "gratuit", "promo"),
            ("vols", "hôtels", "montres", "crédit", "casino en ligne", "assurance auto")),
    "deu": (("billig", "günstig", "kaufen", "gratis", "beste"),
            ("Flüge", "Hotels", "Uhren", "Kredit", "Casino Bonus", "Autoversicherung")),
    "spa": (("barato", "mejor", "comprar", "gratis", "oferta"),
            ("vuelos", "hoteles", "relojes", "préstamos", "casino online", "seguro de coche")),
    "rus": (("дешево", "купить", "лучший", "бесплатно", "скидка"),
            ("авиабилеты", "отели", "часы", "кредит", "казино", "автостраховка")),
}
LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo "
    "consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint "
    "occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est laborum"
).split()
SCRIPT_LINES = (
    "var _q = window._q || []; _q.push(['setAccount', 'UA-{id}-{n}']);",
    "function loadAds() {{ var s = document.createElement('script'); s.async = true; }}",
    "if (typeof jQuery !== 'undefined') {{ jQuery('.slider').show(); }}",
    ".header {{ margin: 0 auto; max-width: {n}0px; }}",
)
HASHTAGS = (
    "travel", "love", "instagood", "photooftheday", "fashion", "beautiful", "happy", "cute", "followme",
    "nature", "summer", "art", "food", "style", "fitness", "sale", "deal", "giveaway", "win", "likeforlike",
)
ERROR_PAGES = (
    "404 Not Found",
    "Page not found. The page you are looking for does not exist.",
    "Access denied.",
    "Loading...",
    "This account has been suspended.",
    "Index of /",
    "Under construction. Come back soon!",
)


# --- writing ------------------------------------------------------------------------------------------


def assign_ids(records: list[Rec], seed: int) -> list[Rec]:
    """Crawl order: records shuffled together, then numbered; `origin` keys become ids."""
    order = list(records)
    rng_for(seed, "order").shuffle(order)
    ids = {r.key: f"sample-{i:05d}" for i, r in enumerate(order, 1)}
    for r in order:
        r.origin = ids[r.origin] if r.origin else None
        r.key = ids[r.key]
    return order


def encode_line(r: Rec) -> bytes:
    obj: dict[str, Any] = {"id": r.key, "text": r.text, "url": r.url, "kind": r.kind, "lang": r.lang,
                           "origin": r.origin}
    if r.variant == "no_text":
        del obj["text"]
    line = json.dumps(obj, ensure_ascii=False)
    if r.variant == "truncated_json":  # cut mid-string, as a crashed writer leaves a file
        return line[: len(line) // 2].encode("utf-8")
    if r.variant == "html_line":  # an error page saved in place of a record
        return b"<html><body><h1>503 Service Unavailable</h1></body></html>"
    if r.variant == "json_array":  # valid JSON, but not an object
        return json.dumps([r.key, r.text], ensure_ascii=False).encode("utf-8")
    if r.variant == "latin1_bytes":  # a Latin-1 line in a UTF-8 file: "é" is the lone byte 0xE9
        return line.encode("latin-1", errors="replace")
    return line.encode("utf-8")


def jsonl_bytes(records: list[Rec]) -> bytes:
    return b"".join(encode_line(r) + b"\n" for r in records)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def gz(data: bytes) -> bytes:
    """gzip with no timestamp and no file name, so the bytes depend on the content only."""
    return gzip.compress(data, compresslevel=9, mtime=0)


# --- WARC ---------------------------------------------------------------------------------------------

# Pages written in a legacy charset, as many sites still are; the reader must decode them.
LEGACY_CHARSETS = {"fra": "windows-1252", "rus": "windows-1251", "jpn": "shift_jis"}


def page_html(rec: Rec, rng: random.Random, charset: str) -> str:
    """A realistic page: head with scripts, header/nav, breadcrumb, article, aside, cookie banner, footer."""
    lang = rec.lang if rec.lang in BCP47 else "eng"
    ch = chrome_for(lang)
    site = rec.url.split("//", 1)[1].split("/", 1)[0].removeprefix("www.").split(".")[0]
    paragraphs = [p for p in rec.text.split("\n") if p.strip()]
    title = paragraphs[0][:70]
    esc = html.escape
    nav = "".join(f'<li><a href="/{esc(item.lower())}/">{esc(item)}</a></li>' for item in ch["nav"])
    related = "".join(f'<li><a href="/a/{rng.randint(1000, 9999)}">{esc(t[:60])}</a></li>'
                      for t in rng.sample(paragraphs, min(3, len(paragraphs))))
    body = "\n".join(f"<p>{esc(p)}</p>" for p in paragraphs)
    footer = "".join(f"<li>{esc(f.format(site=site.title()))}</li>" for f in ch["footer"])
    return f"""<!DOCTYPE html>
<html lang="{BCP47[lang]}" dir="{'rtl' if lang in RTL else 'ltr'}">
<head>
<meta charset="{charset}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} | {esc(site.title())}</title>
<link rel="stylesheet" href="/static/css/main.{rng.randint(100, 999)}.css">
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}
gtag('js', new Date()); gtag('config', 'UA-{rng.randint(10**6, 10**7)}-1');</script>
<style>.cookie-banner {{ position: fixed; bottom: 0; }}</style>
</head>
<body>
<a class="skip-link" href="#main">{esc(ch['skip'])}</a>
<header class="site-header"><a class="logo" href="/">{esc(site.title())}</a>
<nav><ul>{nav}</ul></nav>
<form action="/search"><input type="text" name="q" placeholder="{esc(ch['search'])}"></form>
</header>
<div class="breadcrumb"><a href="/">{esc(ch['nav'][0])}</a> › <a href="/c/">{esc(ch['nav'][4])}</a></div>
<main id="main">
<article>
<h1>{esc(title)}</h1>
<p class="byline">{esc(ch['posted'].format(date=post_date(rng), author=rng.choice(AUTHORS)))}</p>
{body}
<div class="share">{' '.join(f'<a href="#">{esc(s)}</a>' for s in ch['share'])}</div>
</article>
<aside><h2>{esc(ch['related'])}</h2><ul>{related}</ul></aside>
</main>
<div class="cookie-banner">{esc(' '.join(ch['cookie'][:2]))} <button>{esc(ch['cookie'][2])}</button></div>
<footer><ul>{footer}</ul></footer>
<noscript>{esc(ch['js'])}</noscript>
</body>
</html>
"""


def _warc_record(rtype: WarcRecordType, urn: str, date: datetime, headers: list[tuple[str, str]],
                 content: bytes) -> bytes:
    rec = WarcRecord()
    rec.init_headers(rtype, record_urn=urn.encode())
    rec.headers["WARC-Date"] = date.strftime("%Y-%m-%dT%H:%M:%SZ")
    for name, value in headers:
        rec.headers[name] = value
    rec.set_bytes_content(content)
    buf = io.BytesIO()
    rec.write(buf, checksum_data=True)
    return buf.getvalue()


def _urn(seed: int, *parts: str) -> str:
    return f"uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '/'.join(['babelbeam-sample', str(seed), *parts]))}"


def _http_response(status: str, content_type: str, body: bytes, date: datetime, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status}\r\nDate: {date:%a, %d %b %Y %H:%M:%S} GMT\r\nServer: nginx\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode("ascii") + body


def pick_warc_pages(records: list[Rec], seed: int) -> list[Rec]:
    """Pages to wrap: clean documents across languages (the legacy-charset ones first), a near duplicate,
    an exact duplicate and a boilerplate page; all of them also lie in the JSONL."""
    rng = rng_for(seed, "warc", "pick")
    clean = [r for r in records if r.kind == "clean"]
    picked: list[Rec] = [next(r for r in clean if r.lang == lang) for lang in LEGACY_CHARSETS]
    for kind in ("near_dup", "exact_dup", "boilerplate"):
        picked.append(next(r for r in records if r.kind == kind and r.lang in BCP47))
    langs = sorted({r.lang for r in clean} - set(LEGACY_CHARSETS))
    for lang in rng.sample(langs, N_WARC_PAGES - len(picked)):
        picked.append(next(r for r in clean if r.lang == lang))
    return picked


def warc_bytes(records: list[Rec], seed: int) -> tuple[bytes, Counter]:
    """The WARC: warcinfo, then request + response per page, a robots.txt and a redirect, each record its
    own gzip member (as Common Crawl writes them)."""
    rng = rng_for(seed, "warc", "html")
    date = CRAWL_DATE
    members: list[bytes] = []
    counts: Counter = Counter()

    def emit(rtype: WarcRecordType, urn: str, headers: list[tuple[str, str]], content: bytes, what: str) -> None:
        nonlocal date
        date += timedelta(seconds=7)
        members.append(gz(_warc_record(rtype, urn, date, headers, content)))
        counts[what] += 1

    info_urn = _urn(seed, "warcinfo")
    info = (b"software: babelbeam tools/make_sample.py\r\nformat: WARC File Format 1.1\r\n"
            b"description: sample pages built from Tatoeba sentences (CC-BY 2.0 FR), see NOTICE.md\r\n")
    emit(WarcRecordType.warcinfo, info_urn, [("Content-Type", "application/warc-fields"),
                                             ("WARC-Filename", WARC_NAME)], info, "warcinfo")
    for i, rec in enumerate(pick_warc_pages(records, seed)):
        charset = LEGACY_CHARSETS.get(rec.lang, "utf-8") if rec.kind == "clean" else "utf-8"
        body = page_html(rec, rng, charset).encode(charset, errors="xmlcharrefreplace")
        # one legacy page declares its charset only in <meta>, as many old servers do
        ctype = "text/html" if rec.lang == "rus" and charset != "utf-8" else f"text/html; charset={charset}"
        host = rec.url.split("/")[2]
        path = "/" + rec.url.split("/", 3)[3]
        req_urn, resp_urn = _urn(seed, "request", rec.url), _urn(seed, "response", rec.url)
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: babelbeam-sample/1.0\r\n"
                   "Accept: text/html\r\n\r\n").encode()
        common = [("WARC-Target-URI", rec.url), ("WARC-IP-Address", f"192.0.2.{i + 10}"),
                  ("WARC-Warcinfo-ID", f"<urn:{info_urn}>")]
        emit(WarcRecordType.request, req_urn, common + [("Content-Type", "application/http; msgtype=request"),
                                                        ("WARC-Concurrent-To", f"<urn:{resp_urn}>")],
             request, "request")
        response = _http_response("200 OK", ctype, body, date, "Cache-Control: max-age=600\r\n")
        emit(WarcRecordType.response, resp_urn,
             common + [("Content-Type", "application/http; msgtype=response"),
                       ("WARC-Identified-Payload-Type", "text/html")], response, "response: text/html 200")
    robots = b"User-agent: *\nDisallow: /admin/\nSitemap: https://www.dailyharbor.example/sitemap.xml\n"
    for url, status, ctype, body, extra, what in (
        ("https://www.dailyharbor.example/robots.txt", "200 OK", "text/plain", robots, "",
         "response: text/plain 200"),
        ("http://citynotes.example/", "301 Moved Permanently", "text/html", b"", 
         "Location: https://www.citynotes.example/\r\n", "response: redirect 301"),
    ):
        emit(WarcRecordType.response, _urn(seed, "response", url),
             [("WARC-Target-URI", url), ("WARC-Warcinfo-ID", f"<urn:{info_urn}>"),
              ("Content-Type", "application/http; msgtype=response")],
             _http_response(status, ctype, body, date, extra), what)
    return b"".join(members), counts


# --- docs ---------------------------------------------------------------------------------------------

NOTICE = """# Sample corpus: attribution

`sample.jsonl.gz` and `sample.warc.gz` are generated by `python -m tools.make_sample` (see `README.md`).

## Source
The sentences come from the **Tatoeba** corpus (https://tatoeba.org), through the Tatoeba test set of 112
languages published with LASER (facebookresearch/LASER, `data/tatoeba/v1`), which was taken from Tatoeba on
**2018-11-17**. Only the even-numbered lines of each pair file are used.

## License
Tatoeba sentences are licensed under **Creative Commons Attribution 2.0 France (CC-BY 2.0 FR)**,
https://creativecommons.org/licenses/by/2.0/fr/ — see https://tatoeba.org/eng/terms_of_use.
Copyright in each sentence belongs to its Tatoeba contributor.

## What was changed
- Sentences were grouped into documents (a seeded random selection per language; sentences repeat across
  documents) and paragraphs; no sentence text was edited except as listed below.
- Synthetic web noise was added: exact and near-duplicate copies (a header or footer line added, a sentence
  replaced or removed, two words swapped, case or spacing changed), site chrome (menus, cookie banners,
  footers), spam (keyword lists, repeated lines, lorem ipsum, script code, hashtags), short pages,
  two-language pages, English versions of documents built from the same Tatoeba pairs, and malformed records
  (broken JSON, invalid UTF-8, missing or non-string text, empty text).
- The page chrome, spam and error-page wording is our own; the WARC wraps some documents in synthetic HTML.
- URLs use the reserved `.example` domain and documentation IP addresses; they do not name real sites.
"""


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


KIND_DOC = {
    "clean": "documents of Tatoeba sentences, 70-650 words, paragraphs of 2-6 sentences",
    "exact_dup": "copies of clean documents at other URLs (1-4 copies each); a fifth differ only in case, "
                 "spacing or quotes, which dedup normalisation removes",
    "near_dup": f"edited copies: header/footer line, a sentence replaced or removed, two words swapped; 5-gram "
                f"Jaccard to the original >= {NEAR_DUP_MIN_JACCARD}",
    "boilerplate": "menus, cookie banners, share buttons and footers around an article, a listing or nothing",
    "spam": "keyword stuffing, repeated lines, lorem ipsum, leaked script/CSS, link farms, hashtag lists",
    "short": "one to a few sentences, or an error page: under 50 words",
    "mixed_language": "two languages in blocks, alternating paragraphs, or sentences glossed in English",
    "parallel": "a document in one of the 14 USE-m languages and its English version (same Tatoeba pairs, "
                "same order and paragraphs; `origin` links them)",
    "oversize": f"a mirrored archive page of {OVERSIZE_CHARS:,}+ characters, over ingest's max_doc_chars",
    "malformed": "broken JSON (2), invalid UTF-8, a JSON array, no `text`, `text` a number or an object, "
                 "empty and whitespace-only text",
}


def readme(records: list[Rec], warc_counts: Counter, jsonl_size: int, warc_size: int, seed: int) -> str:
    kinds = Counter(r.kind for r in records)
    by_lang: dict[str, Counter] = {}
    for r in records:
        if r.kind != "malformed":  # a two-language page counts under its first language
            by_lang.setdefault(r.lang.split("+")[0], Counter())[r.kind] += 1
    cols = tuple(k for k in KIND_DOC if k != "malformed")
    lang_rows = [(lang, sum(c.values()), *(c[k] or "" for k in cols))
                 for lang, c in sorted(by_lang.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))]
    pairs = Counter(r.lang for r in records if r.kind == "mixed_language")
    lines = [
        "# Built-in sample corpus",
        "",
        f"Generated by `python -m tools.make_sample --seed {seed}` from the Tatoeba sentences described in",
        "`NOTICE.md`; do not edit these files by hand. `pipelines.build` reads this corpus when no `--input`",
        "is given. Records are in crawl order (all kinds shuffled together).",
        "",
        f"- `{JSONL_NAME}`: {len(records):,} lines, {jsonl_size:,} bytes uncompressed. Each line is "
        '`{"id", "text", "url", "kind", "lang", "origin"}`: `kind` is what the record was built to exercise, '
        "`lang` the Tatoeba code of its text (`x+y` for two languages; `lat` is lorem ipsum, `und` unknown), "
        "`origin` the id of the record it was copied, edited or translated from.",
        f"- `{WARC_NAME}`: {sum(warc_counts.values())} WARC records, {warc_size:,} bytes uncompressed, one gzip "
        "member each: " + ", ".join(f"{n} {w}" for w, n in sorted(warc_counts.items())) + ". The HTML pages wrap "
        "documents that are also in the JSONL (same URL) in site chrome (nav, cookie banner, footer); the "
        "French, Russian and Japanese pages are in windows-1252, windows-1251 (declared only in `<meta>`) and "
        "Shift_JIS.",
        "",
        "## Records per kind",
        "",
        *_table(("kind", "records", "what it is"), [(k, kinds[k], KIND_DOC[k]) for k in KIND_DOC]),
        "",
        "## Records per language (malformed lines excluded)",
        "",
        *_table(("lang", "records", *cols), lang_rows),
        "",
        "Two-language pages: " + ", ".join(f"{pair} {n}" for pair, n in sorted(pairs.items())) + ".",
        "",
    ]
    return "\n".join(lines)


# --- entry point --------------------------------------------------------------------------------------


def build(out: Path, seed: int = 0, data_dir: Path = DEFAULT_DATA) -> dict[str, Any]:
    """Write the sample files into `out`; returns a summary (records per kind, sizes)."""
    pools = load_pools(data_dir)
    records = assign_ids(Builder(pools, seed).build(), seed)
    jsonl = jsonl_bytes(records)
    warc, warc_counts = warc_bytes(records, seed)
    out.mkdir(parents=True, exist_ok=True)
    jsonl_gz = gz(jsonl)
    _write_atomic(out / JSONL_NAME, jsonl_gz)
    _write_atomic(out / WARC_NAME, warc)
    _write_atomic(out / "README.md", readme(records, warc_counts, len(jsonl), len(gzip.decompress(warc)), seed)
                  .encode())
    _write_atomic(out / "NOTICE.md", NOTICE.encode())
    return {
        "records": len(records),
        "kinds": dict(sorted(Counter(r.kind for r in records).items())),
        "languages": len({r.lang for r in records if r.kind == "clean"}),
        "jsonl_gz_bytes": len(jsonl_gz),
        "warc_gz_bytes": len(warc),
        "warc_records": sum(warc_counts.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Tatoeba XXX-eng.tsv folder")
    args = parser.parse_args(argv)
    summary = build(args.out, args.seed, args.data)
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
