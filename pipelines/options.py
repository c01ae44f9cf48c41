"""Command-line options of `python -m pipelines.build`: Beam's own options plus babelbeam's."""

from __future__ import annotations

from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

STAGES = ("langid", "quality", "dedup", "bitext", "codeswitch", "mixture")
DEFAULT_STAGES = STAGES
SAMPLE_DIR = Path(__file__).parent / "sample"
DEFAULT_OUTPUT = "output"


class BuildOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("babelbeam")
        group.add_argument("--input", nargs="+", action="extend", default=None,
                           help="files, globs or folders; default: the built-in sample corpus")
        group.add_argument("--input_format", default=None, choices=("jsonl", "parquet", "text", "warc"),
                           help="default: from each file's name (.jsonl, .gz, .zst, .parquet, .txt, .warc, .wet)")
        group.add_argument("--text_field", default="text", help="JSONL/Parquet field holding the text")
        group.add_argument("--id_field", default="id",
                           help="field holding the document id; missing ids are derived from file and position")
        group.add_argument("--text_lines", action="store_true",
                           help="plain text: one document per line instead of one per file")
        group.add_argument("--output", default=DEFAULT_OUTPUT, help="output folder (default: ./output)")
        group.add_argument("--stages", default=",".join(DEFAULT_STAGES),
                           help=f"comma-separated subset of {','.join(STAGES)}, run in that order")
        group.add_argument("--config", default=None, help="YAML file of stage settings (see README)")
        group.add_argument("--lid_model", default=None,
                           help="fastText LID model: lid.176.bin or GlotLID model_v3.bin (default: bundled lid.176.ftz)")
        group.add_argument("--merges", default=None,
                           help="tokenizer file for the mixture stage (default: cl100k_base)")
        group.add_argument("--overwrite", action="store_true",
                           help="replace an output folder that holds a different run")
        group.add_argument("--incremental", action="store_true",
                           help="add to the output folder: skip inputs that earlier runs processed (same name, size and "
                                "checksum), write new shards under new names, record the lineage")
        group.add_argument("--reprocess", action="store_true",
                           help="with --incremental: process every input again, even the ones already processed")
        group.add_argument("--no_wait", action="store_true",
                           help="submit the job and return; its last step writes manifest.json and report.html "
                                "(without per-stage busy_s). For launchers that must not wait, such as Dataflow "
                                "Flex Templates")
        group.add_argument("--allow_corrupt_inputs", action="store_true",
                           help="exit 0 even when a compressed input was truncated (its records are quarantined)")


def parse_stages(value: str) -> list[str]:
    """The requested stages in pipeline order; raises ValueError naming any unknown stage."""
    requested = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in requested if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if not requested:
        raise ValueError(f"--stages is empty; choose from {', '.join(STAGES)}")
    if "codeswitch" in requested and "bitext" not in requested:
        raise ValueError("stage codeswitch needs the bitext stage: add bitext to --stages")
    return [s for s in STAGES if s in requested]
