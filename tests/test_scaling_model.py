"""The scaling model's arithmetic on made-up measurements."""

from tools.bench.scaling_model import efficiencies, report, stage_costs

RUNNERS = {
    "docs": 1000, "stages": "langid,quality,dedup", "cpus": 2,
    "in_process": {"input_bytes": 2e9, "wall_s": 100.0, "docs_per_s": 10.0,
                   "busy_s": {"ingest": 10.0, "langid": 40.0, "quality": 20.0, "dedup": 10.0}},
    "multiprocess": {"input_bytes": 2e9, "wall_s": 80.0, "docs_per_s": 12.5},
}
FULL = {"inputs": [{"bytes": 5e8}], "busy_s": {"bitext": 100.0, "langid": 999.0}}


def test_costs_per_gb_come_from_the_right_run():
    costs = stage_costs(RUNNERS, FULL)
    assert costs == {"ingest": 5.0, "langid": 20.0, "quality": 10.0, "dedup": 5.0, "bitext": 200.0}


def test_efficiency_is_stage_work_over_worker_wall_time():
    eff = efficiencies(RUNNERS, stage_costs(RUNNERS, None))
    assert eff == {"in_process": 0.8, "multiprocess": 0.5}


def test_report_costs_a_terabyte():
    text = report(RUNNERS, FULL, 1.0)
    # in-process: 1000 GB x 40 core-s/GB / 0.8 / 3600 = 13.9 h; with bitext 1000 x 240 / 0.8 / 3600 = 83.3 h
    assert "| in_process | 1 | 100 s | 10 | 80% | 14 | 83 |" in text
    assert "**bitext**" in text
