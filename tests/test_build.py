"""End to end: `python -m pipelines.build` on DirectRunner — accounting, stage selection, determinism across
worker counts and running modes, and user mistakes ending in one clear line with exit status 2."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO, error_lines, multilingual_records, write_jsonl
from transforms import accounting

pytestmark = pytest.mark.slow


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_langid_quality_run_accounting_closes(corpus, tmp_path, run_build):
    result = run_build(["--input", str(corpus), "--output", str(tmp_path / "out"), "--stages", "langid,quality"])
    assert result.rc == 0, result.stderr
    m = result.manifest
    acc = m["accounting"]
    n_lines = len(corpus.read_bytes().splitlines())
    assert acc["input_records"] == n_lines == 22 * 3 + 1
    assert acc["closes"] and acc["input_records"] == acc["kept"] + acc["dropped"] + acc["quarantined"]
    for name in ("langid", "quality"):
        stage = acc["stages"][name]
        assert stage["in"] == stage["kept"] + sum(stage["dropped"].values())
    # quality keeps partitions, so it closes per partition too (langid assigns them: its input has none)
    for part in acc["stages"]["quality"]["partitions"].values():
        assert part["in"] == part["kept"] + sum(part["dropped"].values())
    assert acc["stages"]["langid"]["in"] == acc["stages"]["ingest"]["kept"]
    assert acc["stages"]["quality"]["in"] == acc["stages"]["langid"]["kept"]
    assert acc["quarantined"] == 1
    # worker time per stage, from the runner's execution-time metrics
    assert set(m["busy_s"]) <= {"ingest", "langid", "quality", "write", "accounting"}
    assert {"langid", "quality", "write"} <= set(m["busy_s"]) and sum(m["busy_s"].values()) > 0
    # the files hold exactly what the manifest counts
    docs, rejected, quarantine = result.rows("documents"), result.rows("rejected"), result.rows("quarantine")
    assert len(docs) == acc["kept"] > 0
    assert len(rejected) == acc["dropped"] and len(quarantine) == 1
    assert quarantine[0]["raw"] == b'{"id": "broken", "text": '
    assert all(r["stage"] == "quality" and r["reason"] for r in rejected)
    # rejected documents say which filter and rule dropped them
    assert Counter(r["reason"] for r in rejected) == Counter(acc["stages"]["quality"]["dropped"])
    assert all(":" in r["detail"] for r in rejected)
    # documents are labelled with their real language and partitioned by it
    gold = {r["id"]: r["gold"] for r in multilingual_records()}
    correct = sum(d["language"] == ("fas" if gold[d["id"]] == "pes" else gold[d["id"]]) for d in docs)
    assert correct == len(docs)
    for d in docs:
        assert d["partition"] == f"{d['language']}_{d['script']}" and 0 < d["language_score"] <= 1
        assert d["quality_signals"]["n_words"] is not None
    folders = {p.name for p in (result.output / "documents").iterdir()}
    assert folders == {d["partition"] for d in docs}
    # the manifest records inputs, options, config and versions
    assert m["inputs"][0]["bytes"] == corpus.stat().st_size and len(m["inputs"][0]["xxh3_128"]) == 32
    assert m["config"]["quality"]["defaults"]["fineweb"]["line_punct_thr"] == 0.12
    assert "apache-beam" in m["versions"] and m["stages"] == ["langid", "quality"]
    assert "accounting closes" in result.stdout
    assert not list(result.output.rglob("*.tmp-*")) and not (result.output / "_staging").exists()


def test_langid_only_drops_nothing(corpus, tmp_path, run_build):
    result = run_build(["--input", str(corpus), "--output", str(tmp_path / "out"), "--stages", "langid"])
    assert result.rc == 0
    acc = result.manifest["accounting"]
    assert set(acc["stages"]) == {"ingest", "langid"}
    assert acc["stages"]["langid"]["dropped"] == {}
    assert acc["kept"] == acc["stages"]["ingest"]["kept"] == len(result.rows("documents"))
    assert not (result.output / "rejected" / "quality").exists()
    assert all(d["quality_signals"] is None for d in result.rows("documents"))


def test_multi_threading_mode_is_warned_about(corpus, tmp_path, run_build, caplog):
    """multi_threading crashed or ran out of memory at 50k-200k documents (RESULTS_dedup.md): say so up front."""
    argv = ["--input", str(corpus), "--stages", "langid", "--direct_running_mode=multi_threading"]
    with caplog.at_level(logging.WARNING, logger="babelbeam"):
        result = run_build([*argv, "--output", str(tmp_path / "mt")])
    assert result.rc == 0
    assert sum("multi_threading crashed or ran out of memory" in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="babelbeam"):
        run_build([*argv[:-1], "--output", str(tmp_path / "default")])
    assert not any("multi_threading crashed" in r.getMessage() for r in caplog.records)


def test_progress_logs_count_and_rate_at_most_every_interval(monkeypatch, caplog):
    clock = iter([0.0, 1.0, 6.0, 7.0, 12.5])
    monkeypatch.setattr(accounting.time, "monotonic", lambda: next(clock))
    progress = accounting.Progress("bitext", "sentences embedded", every_s=5.0)
    with caplog.at_level(logging.WARNING, logger="babelbeam"):
        for n in (10, 20, 5, 15):
            progress.add(n)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("[bitext] worker") and messages[0].endswith(": 30 sentences embedded (5/s)")
    assert messages[1].endswith(": 50 sentences embedded (4/s)")


def test_byte_identical_documents_whatever_the_workers(tmp_path, run_build):
    records = multilingual_records(per_language=4, n_sentences=10, seed=3)
    src = write_jsonl(tmp_path / "in" / "a.jsonl", records[:50], [b"oops"])
    write_jsonl(tmp_path / "in" / "b.jsonl", records[50:])
    config = tmp_path / "small.yaml"
    config.write_text("ingest: {split_bytes: 3000}\noutput: {spill_bytes: 5000, hash_buckets: 8, max_shard_bytes: 1500}\n")
    common = ["--input", str(src.parent), "--stages", "langid,quality", "--config", str(config)]
    one = run_build([*common, "--output", str(tmp_path / "one"), "--direct_num_workers=1",
                     "--direct_running_mode=in_memory"])
    two = run_build([*common, "--output", str(tmp_path / "two"), "--direct_num_workers=2",
                     "--direct_running_mode=multi_processing"])
    assert one.rc == two.rc == 0, two.stderr
    for folder in ("documents", "rejected", "quarantine"):
        a, b = _file_bytes(one.output / folder), _file_bytes(two.output / folder)
        assert a and a == b, folder
    assert one.manifest["accounting"] == two.manifest["accounting"]
    assert any(len(list(p.glob("*.parquet"))) > 1 for p in (one.output / "documents").iterdir())  # several shards
    # the encoders' thread count, left to the runner, is resolved for it and recorded
    cores = len(os.sched_getaffinity(0))
    threads = [run.manifest["config"]["bitext"]["encoder_threads"] for run in (one, two)]
    assert threads == [cores, max(1, cores // 2)]


# --- user mistakes -----------------------------------------------------------------------------------


def _assert_user_error(result, fragment: str, previous_manifest: dict | None = None):
    assert result.rc == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert result.manifest == previous_manifest  # nothing was written or removed


@pytest.mark.parametrize("case, fragment", [
    ("no_match", "no input matches"),
    ("unknown_stage", "unknown stage(s) dedupe"),
    ("unknown_key", "quality.defaults.fineweb.line_punct_thres"),
    ("bad_value", "langid.min_score"),
    ("invalid_yaml", "not valid YAML"),
    ("unreadable_config", "cannot read config"),
    ("config_not_mapping", "must be a mapping"),
    ("bad_language_override", "gopher_quality"),
    ("unknown_option", "--no_such_flag"),
    ("missing_lid_model", "--lid_model"),
])
def test_user_mistakes_exit_2_with_one_line(case, fragment, corpus, tmp_path, run_build):
    args = ["--input", str(corpus), "--output", str(tmp_path / "out"), "--stages", "langid"]
    config = tmp_path / "c.yaml"
    if case == "no_match":
        args[1] = str(tmp_path / "nothing" / "*.jsonl")
    elif case == "unknown_stage":
        args[-1] = "langid,dedupe"
    elif case == "unknown_option":
        args.append("--no_such_flag=1")
    elif case == "missing_lid_model":
        args += ["--lid_model", str(tmp_path / "nope.bin")]
    else:
        config.write_text({
            "unknown_key": "quality:\n  defaults:\n    fineweb: {line_punct_thres: 0.1}\n",
            "bad_value": "langid: {min_score: 1.5}\n",
            "invalid_yaml": "langid: {min_score: [0.5\n",
            "config_not_mapping": "- a\n- b\n",
            "bad_language_override": "quality:\n  languages:\n    fra_Latn: {gopher_quality: {min_doc_wordz: 3}}\n",
        }.get(case, ""))
        args += ["--config", str(tmp_path if case == "unreadable_config" else config)]
    _assert_user_error(run_build(args), fragment)


def test_output_of_a_different_run_needs_overwrite(corpus, tmp_path, run_build):
    out = str(tmp_path / "out")
    first = run_build(["--input", str(corpus), "--output", out, "--stages", "langid"])
    assert first.rc == 0
    again = run_build(["--input", str(corpus), "--output", out, "--stages", "langid"])
    assert again.rc == 0  # the same run may be repeated in place
    different = run_build(["--input", str(corpus), "--output", out, "--stages", "langid,quality"])
    _assert_user_error(different, "--overwrite", again.manifest)
    forced = run_build(["--input", str(corpus), "--output", out, "--stages", "langid,quality", "--overwrite"])
    assert forced.rc == 0 and forced.manifest["stages"] == ["langid", "quality"]
    (tmp_path / "out" / "notes.txt").write_text("mine")
    foreign = run_build(["--input", str(corpus), "--output", out, "--stages", "langid,quality"])
    _assert_user_error(foreign, "did not write", forced.manifest)
    assert (tmp_path / "out" / "notes.txt").exists()


def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines.build", "--input", str(tmp_path / "none.jsonl"),
                           "--output", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(error_lines(proc.stderr)) == 1 and "no input matches" in proc.stderr


def test_no_wait_job_writes_its_own_manifest_as_its_last_step(corpus, tmp_path, run_build, monkeypatch):
    """The Dataflow Flex Template launcher (`infra/dataflow/launch.py`) must return once the job is submitted:
    with --no_wait the job itself writes the manifest and report, and they match a waited-for run's."""
    import runpy

    waited = run_build(["--input", str(corpus), "--output", str(tmp_path / "waited"), "--stages", "langid,quality"])
    assert waited.rc == 0
    out = tmp_path / "launched"
    monkeypatch.setattr(sys, "argv", ["launch.py", "--input", str(corpus), "--output", str(out),
                                      "--stages", "langid,quality"])
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(str(REPO / "infra" / "dataflow" / "launch.py"), run_name="__main__")
    assert exit_status.value.code == 0
    launched = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert launched["options"].get("no_wait") is True and launched["busy_s"] is None
    for key in ("fingerprint", "accounting", "outputs", "stage_stats", "profile", "inputs"):
        assert launched[key] == waited.manifest[key], key
    assert (out / "report.html").stat().st_size > 10_000 and not (out / "_staging").exists()
