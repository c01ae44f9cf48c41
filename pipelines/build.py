"""`python -m pipelines.build`: read documents, run the stages in order, write Parquet and a manifest.

The pipeline reads top to bottom as the stages. Each stage is a PTransform from `transforms/` that returns
kept documents, rejected documents and, for some stages, extra tables (transforms/core.py); this module only
wires them together, counts what each stage keeps and drops, and writes every output with one sink.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipelines import manifest as run_manifest
from pipelines import report as run_report
from pipelines.options import SAMPLE_DIR, BuildOptions, parse_stages
from pipelines.runners import runner_for, threads_per_bundle
from schemas.documents import DOCUMENT_SCHEMA, QUARANTINE_SCHEMA, REJECTED_SCHEMA
from transforms import fs
from transforms.accounting import LogProgress, WriteJson, count_events, document_profile, value_histogram
from transforms.config import BuildConfig, ConfigError, load_config
from transforms.io import InputError, ReadDocuments, WriteParquetShards, checksum_file, expand_inputs, plan_reads, quarantine_reason

log = logging.getLogger("babelbeam")


class UserError(Exception):
    """A mistake in how the pipeline was called: reported in one line, exit status 2."""


# Distributions shown in report.html: table -> (field, bin width, field to count rows by, one histogram per value
# of this field): margins of different encoder sets live on different scales
REPORT_HISTOGRAMS = {"bitext": ("margin", 0.01, "pair", "encoder"), "codeswitch": ("cmi", 5.0, "pair", None)}


def stage_transform(name: str, config: BuildConfig, opts: BuildOptions, output_dir: str) -> beam.PTransform:
    """The PTransform of one stage, built from its config section."""
    if name == "langid":
        from transforms.langid import LanguageId

        return LanguageId(config.langid, opts.lid_model)
    if name == "quality":
        from transforms.quality import QualityFilter

        return QualityFilter(config.quality)
    if name == "dedup":
        from transforms.dedup import Dedup

        earlier = [p for p in fs.list_files(fs.join(output_dir, "dedup_index")) if p.endswith(".parquet")]
        return Dedup(config.dedup, earlier_index=earlier if opts.incremental else (), write_index=opts.incremental)
    if name == "bitext":
        from transforms.bitext import MineBitext

        return MineBitext(config.bitext)
    if name == "codeswitch":
        from transforms.codeswitch import SynthesizeCodeSwitch

        return SynthesizeCodeSwitch(config.codeswitch)
    if name == "mixture":
        from transforms.mixture import InferMixture

        return InferMixture(config.mixture, output_dir)
    raise UserError(f"unknown stage {name}")


def build(pipeline: beam.Pipeline, items, stages: list[str], config: BuildConfig, opts: BuildOptions,
          output_dir: str, files, prefix: str = "") -> beam.PCollection:
    """Compose the stages and the sinks. Returns the paths of the run's staging JSON files: once all of them
    exist, every shard is written and the manifest can be made."""
    staging = fs.join(output_dir, "_staging")
    out = config.output
    read = pipeline | "Ingest" >> ReadDocuments(items, config.ingest, opts.text_field, opts.id_field)
    documents = read["documents"] | "IngestProgress" >> LogProgress("ingest")
    events = [
        count_events(documents, "CountIngestKept", "ingest", "kept"),
        count_events(read["rejected"], "CountIngestDropped", "ingest", "dropped", "reason"),
        count_events(read["quarantine"], "CountQuarantined", "ingest", "quarantined", quarantine_reason),
    ]
    rejected = [read["rejected"]]
    tables: list[tuple[str, beam.PCollection, object]] = []
    stats = []

    stage_input = documents
    for name in stages:
        transform = stage_transform(name, config, opts, output_dir)
        title = name.capitalize()
        if name == "codeswitch":
            result = pairs | title >> transform  # noqa: F821  (bitext always runs first: parse_stages)
        else:
            result = stage_input | title >> transform
        if "documents" in result:  # a document stage: count what it keeps and drops
            # language ID drops nothing and gives documents their partition: count its input per language
            counted = result["documents"] if name == "langid" else stage_input
            events.append(count_events(counted, f"Count{title}In", name, "in"))
            stage_input = result["documents"]
            events.append(count_events(stage_input, f"Count{title}Kept", name, "kept"))
            if "rejected" in result:
                rejected.append(result["rejected"])
                events.append(count_events(result["rejected"], f"Count{title}Dropped", name, "dropped", "reason"))
        for table_name, spec in getattr(transform, "TABLES", {}).items():
            tables.append((table_name, result[table_name], spec))
        if name == "bitext":
            pairs = result["bitext"]
        if "stats" in result:
            stats.append(result["stats"])

    written = [
        stage_input | "WriteDocuments" >> WriteParquetShards(
            output_dir, "documents", DOCUMENT_SCHEMA, out, partition_field="partition", prefix=prefix),
        tuple(rejected) | "WriteRejected" >> WriteParquetShards(
            output_dir, "rejected", REJECTED_SCHEMA, out, partition_field="stage", prefix=prefix),
        read["quarantine"] | "WriteQuarantine" >> WriteParquetShards(
            output_dir, "quarantine", QUARANTINE_SCHEMA, out, sort_fields=("source", "location"), prefix=prefix),
    ]
    stats.append(stage_input | "ProfileDocuments" >> beam.FlatMap(document_profile)
                 | "SumProfile" >> beam.CombinePerKey(sum))
    for table_name, rows, spec in tables:
        if table_name in REPORT_HISTOGRAMS:
            field, width, group, split = REPORT_HISTOGRAMS[table_name]
            stats.append(rows | f"Profile_{table_name}" >> beam.FlatMap(value_histogram(field, width, group, split))
                         | f"SumProfile_{table_name}" >> beam.CombinePerKey(sum))
        written.append(rows | f"Write_{table_name}" >> WriteParquetShards(
            output_dir, spec.folder, spec.schema, out, partition_field=spec.partition_field,
            sort_fields=spec.sort_fields or ("id",), prefix=prefix))

    bookkeeping = (
        events | "AllEvents" >> beam.Flatten() | "SumEvents" >> beam.CombinePerKey(sum)
        | "WriteAccounting" >> WriteJson(fs.join(staging, "accounting.json")),
        stats | "AllStats" >> beam.Flatten() | "SumStats" >> beam.CombinePerKey(sum)
        | "WriteStats" >> WriteJson(fs.join(staging, "stats.json")),
        written | "AllFiles" >> beam.Flatten() | "WriteFileList" >> WriteJson(fs.join(staging, "files.json")),
        pipeline | "InputFiles" >> beam.Create([f.path for f in files])
        | "Checksum" >> beam.Map(lambda path: {"path": path, "xxh3_128": checksum_file(path)})
        | "WriteChecksums" >> WriteJson(fs.join(staging, "checksums.json")),
    )
    return bookkeeping | "Bookkeeping" >> beam.Flatten()


@dataclass
class RunPlan:
    files: list  # the input files this run reads
    fingerprint: str
    prefix: str = ""  # shard-name prefix: the run id in incremental mode
    skipped: list = field(default_factory=list)
    lineage: list = field(default_factory=list)
    checksums: dict = field(default_factory=dict)


def plan_run(files, stages, config, opts, output_dir) -> RunPlan:
    """Which inputs to read and how to name the output; prepares the output folder."""
    if not opts.incremental:
        fingerprint = run_manifest.fingerprint(files, stages, config, opts)
        run_manifest.prepare_output(output_dir, fingerprint, opts.overwrite)
        return RunPlan(files, fingerprint)
    earlier = run_manifest.earlier_manifests(output_dir) if fs.is_dir(output_dir) else []
    if "dedup" in stages:
        run_manifest.check_minhash_settings(earlier, config)
    done = set() if opts.reprocess else run_manifest.processed_inputs(earlier)
    with ThreadPoolExecutor(max_workers=4) as pool:
        checksums = dict(zip((f.path for f in files), pool.map(checksum_file, (f.path for f in files))))
    new = [f for f in files if (f.name, f.size, checksums[f.path]) not in done]
    skipped = [f for f in files if f not in new]
    fingerprint = run_manifest.fingerprint(new, stages, config, opts, [checksums[f.path] for f in new])
    if new:
        run_manifest.prepare_incremental(output_dir, fingerprint)
    return RunPlan(new, fingerprint, f"{fingerprint}-", skipped, [m["fingerprint"] for m in earlier], checksums)


def run(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = PipelineOptions(argv)
        unknown = run_manifest.unknown_arguments(argv)
        if unknown:
            raise UserError(f"unknown option(s): {' '.join(unknown)} (see --help)")
        opts = options.view_as(BuildOptions)
        stages = parse_stages(opts.stages)
        config = load_config(opts.config)
        if opts.merges:
            config.mixture.merges = opts.merges
        if opts.text_lines:
            config.ingest.text_lines = True
        if opts.lid_model and not os.path.isfile(opts.lid_model):
            raise UserError(f"--lid_model {opts.lid_model} is not a file")
        inputs = opts.input or [str(SAMPLE_DIR / "sample.jsonl.gz")]
        files = expand_inputs(inputs, opts.input_format)
        output_dir = fs.absolute(opts.output)
        plan = plan_run(files, stages, config, opts, output_dir)
    except (UserError, InputError, ConfigError, ValueError, FileNotFoundError, run_manifest.OutputInUse) as exc:
        print(f"babelbeam: error: {exc}", file=sys.stderr)
        return 2
    if not plan.files:
        print(f"babelbeam: nothing to do: all {len(plan.skipped)} input file(s) were processed by earlier runs "
              f"in {output_dir} (pass --reprocess to process them again)")
        return 0
    files, items = plan.files, plan_reads(plan.files, config.ingest)

    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    direct = options.view_as(DirectOptions)
    if config.bitext.encoder_threads is None:  # resolved after the fingerprint: the thread count changes no output
        config.bitext.encoder_threads = threads_per_bundle(runner, direct.direct_running_mode,
                                                           direct.direct_num_workers)
    log.warning("babelbeam: %d input file(s), %d work item(s), stages %s, runner %s -> %s",
                len(files), len(items), ",".join(stages), runner, output_dir)
    if direct.direct_running_mode == "multi_threading":
        log.warning("babelbeam: warning: --direct_running_mode=multi_threading crashed or ran out of memory on "
                    "50k-200k documents here (tools/bench/RESULTS_dedup.md); prefer in_memory or multi_processing")
    started = time.time()
    pipeline = beam.Pipeline(runner=runner_for(runner), options=options)
    staged = build(pipeline, items, stages, config, opts, output_dir, files, plan.prefix)
    finish = functools.partial(_finish_run, output_dir, files, stages, config, argv, plan.fingerprint, started,
                               plan.lineage, plan.skipped, plan.checksums)
    if opts.no_wait:
        staged | "AllStaged" >> beam.combiners.Count.Globally() | "WriteManifest" >> beam.Map(lambda _: finish())
        pipeline.run()
        print(f"babelbeam: job submitted; its last step writes {fs.join(output_dir, 'manifest.json')}")
        return 0
    result = pipeline.run()
    result.wait_until_finish()
    manifest = finish(busy=run_manifest.busy_seconds(result, stages))
    print(run_manifest.summary(manifest))
    corrupt = manifest["accounting"]["corrupt_inputs"]
    if corrupt and not opts.allow_corrupt_inputs:
        print(f"babelbeam: error: {corrupt} compressed input(s) were truncated or corrupt; what could be read "
              f"was kept, the rest is recorded in quarantine/ (pass --allow_corrupt_inputs to accept)",
              file=sys.stderr)
        return 3
    if not manifest["accounting"]["closes"]:
        print("babelbeam: error: the accounting does not close; see manifest.json", file=sys.stderr)
        return 4
    return 0


def _finish_run(output_dir, files, stages, config, argv, fingerprint, started, lineage, skipped, checksums,
                busy=None) -> dict:
    """manifest.json from the staging files, then report.html: on the driver, or as the job's last step."""
    manifest = run_manifest.finalize(output_dir, files, stages, config, argv, fingerprint, time.time() - started,
                                     lineage, skipped, checksums, busy)
    run_report.write(manifest, output_dir)
    return manifest


if __name__ == "__main__":
    sys.exit(run())
