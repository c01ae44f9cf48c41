"""transforms.text: script detection, word segmentation, normalisation and safe path components."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SENTENCES, make_document
from transforms.text import (
    is_punctuation_token,
    normalize_for_dedup,
    safe_path_component,
    script_of,
    segment_words,
    split_sentences,
)


@pytest.mark.parametrize(
    "lang, script",
    [("eng", "Latn"), ("fra", "Latn"), ("rus", "Cyrl"), ("ukr", "Cyrl"), ("ara", "Arab"), ("pes", "Arab"),
     ("cmn", "Hani"), ("jpn", "Jpan"), ("kor", "Hang"), ("tha", "Thai"), ("hin", "Deva"), ("ell", "Grek"),
     ("heb", "Hebr")],
)
def test_script_of_real_documents(lang, script):
    documents = [make_document(lang, 5, start=5 * k) for k in range(8)]
    assert [script_of(d) for d in documents] == [script] * len(documents)


def test_script_of_letterless_and_mixed_text():
    assert script_of("") == "Zyyy"
    assert script_of("12 345 !!! ... ☺ 😀") == "Zyyy"
    # Latin brand names inside Russian text: the majority script wins
    assert script_of("Я купил новый iPhone в магазине Apple сегодня") == "Cyrl"
    # a kanji-only Japanese headline has no kana and reads as Han; a sentence with kana is Japanese
    assert script_of("東京大学") == "Hani"
    assert script_of("東京大学に行きます") == "Jpan"
    assert script_of("ㄅㄆㄇㄈ") == "Hani"  # Bopomofo annotates Chinese


def test_segment_words_chinese_gives_dictionary_words():
    words = [w for w in segment_words("今天天气很好，我们去公园散步吧。") if not is_punctuation_token(w)]
    assert "公园" in words and "散步" in words
    assert any(len(w) > 1 for w in words)  # not one token per character
    assert len(words) < len("今天天气很好我们去公园散步吧")


def test_segment_words_japanese_and_thai():
    ja = segment_words("東京は日本の首都です。")
    assert "東京" in ja and "日本" in ja and "首都" in ja
    th = segment_words("ผมชอบกินข้าวผัดมาก")
    assert th[:3] == ["ผม", "ชอบ", "กิน"]
    assert len(th) >= 5  # not one whitespace-free blob


@pytest.mark.parametrize("lang", ["cmn", "jpn", "tha"])
def test_segment_words_on_real_no_space_sentences(lang):
    text = "".join(SENTENCES[lang][:30])
    words = [w for w in segment_words(text) if not is_punctuation_token(w)]
    chars = sum(len(w) for w in words)
    assert len(words) > 3 * len(text.split())  # a whitespace split would give a handful of tokens
    assert chars / len(words) > 1.2  # not single characters for everything


def test_segment_words_latin_keeps_contractions_and_splits_punctuation():
    tokens = segment_words("Don't use e-mail, it's 3.14 fun!")
    assert tokens == ["Don't", "use", "e-mail", ",", "it's", "3.14", "fun", "!"]
    assert [is_punctuation_token(t) for t in tokens].count(True) == 2
    assert segment_words("") == []


def test_segment_words_astral_characters_in_no_space_text():
    # ICU reports UTF-16 offsets: an emoji before Chinese text must not shift the words
    words = segment_words("😀我们去公园散步吧", script="Hani")
    assert "公园" in words and "散步" in words


def test_split_sentences_cjk_and_latin():
    assert len(split_sentences("我们试试看！你在干什么啊？今天很好。")) == 3
    assert split_sentences("One. Two? Three!") == ["One.", "Two?", "Three!"]


def test_normalize_for_dedup():
    assert normalize_for_dedup("  Héllo,   WORLD!! 2024 café\n") == "hello world 0 cafe"
    assert normalize_for_dedup("Hello world 7") == normalize_for_dedup("hello, WORLD 1999!")
    assert normalize_for_dedup("snake_case") == "snake case"
    assert normalize_for_dedup("我们试试看！") == "我们试试看"
    assert normalize_for_dedup("a b") != normalize_for_dedup("a c")


@pytest.mark.parametrize(
    "value",
    ["../../evil", "..", "/etc/passwd", "a/../b", "a\x00b", "C:\\Windows", "fr\u202ea", "ｆｒａ", "\u2024\u2024",
     "", "   ", "-", "x" * 500, "fra_Latn/../../x", "～／"],
)
def test_safe_path_component_cannot_escape(tmp_path, value):
    part = safe_path_component(value)
    assert part and len(part) <= 64
    assert part not in (".", "..") and "/" not in part and "\\" not in part and "\x00" not in part
    target = os.path.realpath(tmp_path / part)
    assert os.path.dirname(target) == os.path.realpath(tmp_path)


def test_safe_path_component_keeps_valid_codes():
    assert safe_path_component("fra_Latn") == "fra_Latn"
    assert safe_path_component("und_Zyyy") == "und_Zyyy"
    assert safe_path_component("..", fallback="other") == "other"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_safe_path_component_any_text_stays_one_folder(value):
    part = safe_path_component(value)
    assert part and set(part) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    assert part.strip("-_")
