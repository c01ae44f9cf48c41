"""report.html: one self-contained page holding every figure of a run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from pipelines import report


def _manifest() -> dict:
    stage = {"in": 100, "kept": 80, "dropped": {"gopher_quality": 15, "fineweb": 5}, "quarantined": {}}
    return {
        "fingerprint": "abc123",
        "elapsed_s": 12.5,
        "stages": ["langid", "quality", "dedup", "bitext", "codeswitch", "mixture"],
        "accounting": {
            "input_records": 104, "kept": 70, "dropped": 30, "quarantined": 4, "closes": True,
            "stages": {
                "ingest": {"in": 104, "kept": 100, "dropped": {}, "quarantined": {"unreadable_record": 4}},
                "quality": stage,
                "dedup": {"in": 80, "kept": 70, "dropped": {"near_duplicate": 6, "exact_duplicate": 4},
                          "quarantined": {}},
            },
        },
        "profile": {
            "fra_Latn": {"documents": 40, "words": 9000, "margin:rows": 12},
            "deu_Latn": {"documents": 30, "words": 7000, "margin:rows": 9, "cmi:rows": 20},
            "dup_cluster_size": {"2": 5, "3": 2, "10": 1},
            "hist:margin:usem3+e5-small": {"1.05": 3, "1.1": 8, "1.2": 10},
            "hist:margin:e5-small": {"1.01": 4, "1.02": 6},
            "hist:cmi": {"10": 4, "20": 9, "30": 7},
        },
    }


def _write_mixture(folder):
    (folder / "mixture").mkdir(parents=True)
    (folder / "mixture" / "report.json").write_text(json.dumps({
        "tokenizer": {"path": "cl100k_base.tiktoken.gz"},
        "categories": [{"category": "fra_Latn", "byte_share": 0.6}, {"category": "deu_Latn", "byte_share": 0.4}],
    }))


def test_report_is_self_contained_and_holds_every_figure(tmp_path):
    _write_mixture(tmp_path)
    path = report.write(_manifest(), str(tmp_path))
    html = open(path, encoding="utf-8").read()
    for name in report.FIGURES:
        assert f'id="{name}"' in html, name
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(images) == len(report.FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in images)
    # nothing is fetched from elsewhere: no external src/href, no scripts, no stylesheets by link
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "<script" not in html and "<link" not in html
    assert 'class="missing"' not in html


def test_bitext_figure_draws_the_largest_pairs_when_there_are_many(tmp_path):
    manifest = _manifest()
    manifest["profile"].update({f"x{i:02d}_Latn-eng_Latn": {"margin:rows": i + 1} for i in range(report.MAX_BARS + 10)})
    html = open(report.write(manifest, str(tmp_path)), encoding="utf-8").read()
    assert f"({report.MAX_BARS} largest of {report.MAX_BARS + 12} pairs shown)" in html
    few = open(report.write(_manifest(), str(tmp_path / "few")), encoding="utf-8").read()
    assert f"({report.MAX_BARS} largest" not in few


def test_margin_histograms_keep_encoder_sets_apart():
    """Margins of different encoder sets live on different scales (e5-small's near 1.03, USE-m's near 1.2)."""
    from transforms.accounting import value_histogram

    profile = value_histogram("margin", 0.01, "pair", "encoder")
    assert list(profile({"margin": 1.234, "pair": "fra-eng", "encoder": "e5-small"})) == [
        (("report", "hist:margin:e5-small", "1.23"), 1), (("report", "fra-eng", "margin:rows"), 1)]
    assert list(value_histogram("cmi", 5.0)({"cmi": 12.0})) == [(("report", "hist:cmi", "10"), 1)]


def test_report_says_which_figures_have_no_data(tmp_path):
    manifest = _manifest()
    manifest["profile"] = {"fra_Latn": {"documents": 3, "words": 100}}
    html = open(report.write(manifest, str(tmp_path)), encoding="utf-8").read()
    for name in ("dup_cluster_sizes", "bitext", "codeswitch_cmi", "mixture"):
        assert re.search(rf'<figure id="{name}" class="missing">', html), name
    assert '<figure id="documents_per_language"><img' in html


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    _write_mixture(tmp_path)
    path = report.write(_manifest(), str(tmp_path))
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,4000", f"--screenshot={shot}",
         f"file://{path}"],
        check=True, capture_output=True, timeout=120,
    )
    image = Image.open(shot).convert("RGB")
    # figures are drawn: the page is far from blank, and holds the bar colours of the plots
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50
    assert any(abs(r - 0x4C) < 8 and abs(g - 0x72) < 8 and abs(b - 0xB0) < 8 for _, (r, g, b) in colours)


def test_run_summary_shows_every_stage_metric_whole():
    """The summary printed at the end of a run lists every counter of every stage (the bitext line once showed
    only the first eight, hiding how many sentences were embedded), and never splits a name from its value."""
    from pipelines.manifest import summary

    bitext = {f"metric_{i:02d}": 1000 + i for i in range(12)}
    manifest = {"fingerprint": "f", "elapsed_s": 2.0, "stages": ["bitext"], "outputs": [], "busy_s": {"bitext": 1.5},
                "accounting": {"input_records": 3, "kept": 3, "dropped": 0, "quarantined": 0, "closes": True,
                               "stages": {}},
                "stage_stats": {"bitext": {"fra_Latn-eng_Latn": bitext, "deu_Latn-eng_Latn": {"metric_00": 1}}}}
    text = summary(manifest)
    lines = [line for line in text.splitlines() if line.startswith(("  bitext:", "    metric_"))]
    joined = " ".join(line.strip() for line in lines)
    for name, value in bitext.items():
        assert f"{name} {value + (name == 'metric_00'):,}" in joined
    assert len(lines) > 1 and all(len(line) <= 116 for line in lines)
    assert all(re.fullmatch(r"(bitext: )?(metric_\d\d [\d,]+)(, metric_\d\d [\d,]+)*,?", line.strip()) for line in lines)
