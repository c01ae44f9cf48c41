"""OUTPUT/report.html: one self-contained page (figures embedded as PNG) summarising a run.

Everything comes from the manifest (accounting and the profile the pipeline computed) and from the mixture
stage's report.json, so the page is cheap to make even for a very large corpus.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from transforms import fs  # noqa: E402

MAX_BARS = 60  # language pairs drawn in the bitext figure, largest first
FIGURES = ("documents_per_language", "drops_per_stage", "dup_cluster_sizes", "bitext", "codeswitch_cmi", "mixture")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(name: str, title: str, fig) -> str:
    return (f'<figure id="{name}"><img alt="{html.escape(title)}" src="data:image/png;base64,{_png(fig)}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>")


def _missing(name: str, title: str, why: str) -> str:
    return f'<figure id="{name}" class="missing"><figcaption>{html.escape(title)}: {html.escape(why)}</figcaption></figure>'


def _languages(profile: dict) -> str:
    rows = sorted(((p, m.get("documents", 0), m.get("words", 0)) for p, m in profile.items()
                   if isinstance(m, dict) and "documents" in m), key=lambda r: -r[1])[:40]
    title = "Documents and words per language (kept)"
    if not rows:
        return _missing("documents_per_language", title, "no document was kept")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, max(3, 0.22 * len(rows) + 1)), sharey=True)
    names = [r[0] for r in rows][::-1]
    ax1.barh(names, [r[1] for r in rows][::-1], color="#4c72b0")
    ax1.set_xlabel("documents")
    ax2.barh(names, [r[2] for r in rows][::-1], color="#55a868")
    ax2.set_xlabel("words")
    return _figure("documents_per_language", title, fig)


def _drops(accounting: dict) -> str:
    title = "Dropped and quarantined records by stage and reason"
    stages = accounting["stages"]
    reasons = sorted({r for s in stages.values() for r in {**s["dropped"], **s.get("quarantined", {})}})
    if not reasons:
        return _missing("drops_per_stage", title, "nothing was dropped")
    names = list(stages)
    fig, ax = plt.subplots(figsize=(9, 3.5))
    left = [0] * len(names)
    cmap = plt.get_cmap("tab20")
    for i, reason in enumerate(reasons):
        values = [stages[s]["dropped"].get(reason, 0) + stages[s].get("quarantined", {}).get(reason, 0) for s in names]
        ax.barh(names, values, left=left, label=reason or "unknown", color=cmap(i % 20))
        left = [a + b for a, b in zip(left, values)]
    ax.invert_yaxis()
    ax.set_xlabel("records")
    ax.legend(fontsize=7, loc="lower right")
    return _figure("drops_per_stage", title, fig)


def _histogram(profile: dict, key: str, name: str, title: str, xlabel: str, why: str, log: bool = False) -> str:
    hist = profile.get(key) or {}
    if not hist:
        return _missing(name, title, why)
    points = sorted((float(b), n) for b, n in hist.items())
    fig, ax = plt.subplots(figsize=(7, 3))
    xs = [p[0] for p in points]
    width = min((b - a for a, b in zip(xs, xs[1:])), default=1.0)
    ax.bar(xs, [p[1] for p in points], width=width * 0.9, color="#8172b2")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _figure(name, title, fig)


def _bitext(profile: dict) -> str:
    title = "Mined bitext: pairs per language pair and margin scores per encoder set"
    pairs = {p: m["margin:rows"] for p, m in profile.items() if isinstance(m, dict) and "margin:rows" in m}
    hists = {k[len("hist:margin:"):]: v for k, v in sorted(profile.items()) if k.startswith("hist:margin:") and v}
    if not pairs:
        return _missing("bitext", title, "no pair was mined (or the bitext stage did not run)")
    top = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_BARS]
    if len(pairs) > len(top):
        title += f" ({len(top)} largest of {len(pairs)} pairs shown)"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, max(3.5, 0.2 * len(top) + 1)))
    ax1.barh([p for p, _ in top][::-1], [n for _, n in top][::-1], color="#c44e52")
    ax1.set_xlabel("pairs")
    ax1.tick_params(axis="y", labelsize=8)
    cmap = plt.get_cmap("tab10")
    for i, (encoders, hist) in enumerate(hists.items()):
        points = sorted((float(b), n) for b, n in hist.items())
        ax2.step([p[0] for p in points], [p[1] for p in points], where="mid", color=cmap(i % 10),
                 label=f"{encoders} ({sum(hist.values()):,} pairs)")
    ax2.set_xlabel("margin score")
    ax2.set_ylabel("pairs")
    ax2.legend(fontsize=8)
    return _figure("bitext", title, fig)


def _mixture(output_dir: str) -> str:
    title = "Inferred tokenizer training mixture (byte shares)"
    report = fs.read_json(fs.join(output_dir, "mixture", "report.json"))
    if report is None:
        return _missing("mixture", title, "the mixture stage did not run")
    shares = [(c["category"], c.get("byte_share")) for c in report.get("categories", []) if c.get("byte_share")]
    if not shares:
        return _missing("mixture", title, report.get("error") or "no share was inferred")
    shares.sort(key=lambda kv: -kv[1])
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.22 * len(shares) + 1)))
    ax.barh([c for c, _ in shares][::-1], [s for _, s in shares][::-1], color="#937860")
    ax.set_xlabel(f"byte share — tokenizer {os.path.basename(report.get('tokenizer', {}).get('path', '') or '')}")
    return _figure("mixture", title, fig)


def _table(accounting: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(stage)}</td><td>{s['in']:,}</td><td>{s['kept']:,}</td>"
        f"<td>{sum(s['dropped'].values()):,}</td><td>{sum(s.get('quarantined', {}).values()):,}</td></tr>"
        for stage, s in accounting["stages"].items())
    return ("<table><tr><th>stage</th><th>in</th><th>kept</th><th>dropped</th><th>quarantined</th></tr>"
            f"{rows}</table>")


def render(manifest: dict, output_dir: str) -> str:
    """The HTML page for a finished run."""
    acc = manifest["accounting"]
    profile: dict = defaultdict(dict, {k: dict(v) for k, v in manifest.get("profile", {}).items()})
    figures = [
        _languages(profile),
        _drops(acc),
        _histogram(profile, "dup_cluster_size", "dup_cluster_sizes", "Duplicate-cluster sizes of kept documents",
                   "cluster size", "the dedup stage did not run", log=True),
        _bitext(profile),
        _histogram(profile, "hist:cmi", "codeswitch_cmi", "Code-switch CMI distribution", "CMI",
                   "no code-switched sample (or the codeswitch stage did not run)"),
        _mixture(output_dir),
    ]
    status = "closes" if acc["closes"] else "DOES NOT CLOSE"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>babelbeam run {manifest['fingerprint']}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
figure{{margin:1.5em 0}}figure img{{max-width:100%}}.missing figcaption{{color:#888}}</style></head>
<body><h1>babelbeam run {manifest['fingerprint']}</h1>
<p>{acc['input_records']:,} input records in {manifest['elapsed_s']:.1f} s: kept {acc['kept']:,}, dropped
{acc['dropped']:,}, quarantined {acc['quarantined']:,}; the accounting {status}. Stages:
{html.escape(', '.join(manifest['stages']))}.</p>
{_table(acc)}
{''.join(figures)}
</body></html>
"""


def write(manifest: dict, output_dir: str) -> str:
    path = fs.join(output_dir, "report.html")
    fs.write_atomic(path, render(manifest, output_dir).encode())
    return path
