"""The stage-by-stage memory profiler: stage names, per-stage peaks, and that Beam's runner still announces stages."""

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from tools.bench.stage_memory import stage_label, stage_memory, stage_peaks


def test_stage_label_names_the_first_transform_of_the_fused_stage():
    fused = ("((((Dedup/LSH/Bucket/Read)+(ref_AppliedPTransform_Dedup-LSH-StarEdges_27))"
             "+(ref_AppliedPTransform_Dedup-LSH-Distinct-ToPairs_29))+(Dedup/LSH/Distinct/Group/Write))")
    assert stage_label(fused) == "Dedup/LSH/Bucket/Read"
    read = ("(((ref_PCollection_PCollection_2_split/Read)+(ReadFromParquet/Read/SDFBoundedSourceReader/"
            "ParDo(SDFBoundedSourceDoFn)/Process))+(ref_AppliedPTransform_ToDoc_7))")
    assert stage_label(read) == "ReadFromParquet/Read/SDFBoundedSourceReader/ParDo(SDFBoundedSourceDoFn)/Process"
    assert stage_label("((ref_AppliedPTransform_Write-Impulse_3)+(ref_AppliedPTransform_Write-Map_4))") == "Write-Map"


def test_stage_peaks_take_each_stage_window_and_skip_short_stages():
    mib = 2**20
    samples = {
        1: [(0.5, 100 * mib), (2.2, 300 * mib), (3.0, 150 * mib)],  # the driver
        2: [(0.5, 50 * mib), (1.5, 70 * mib), (2.2, 999 * mib), (3.0, 80 * mib), (4.0, 90 * mib)],
        3: [(0.5, 60 * mib), (3.5, 200 * mib)],
    }
    starts = [(0.0, "read"), (2.0, "blip"), (2.5, "group")]
    rows = stage_peaks(starts, 5.0, samples, driver=1, min_seconds=1.0)
    assert rows == [
        {"stage": "read", "seconds": 2.0, "worker_mb": 70, "driver_mb": 100},
        {"stage": "group", "seconds": 2.5, "worker_mb": 200, "driver_mb": 150},
    ]


def test_the_direct_runner_still_announces_its_stages():
    with stage_memory(min_seconds=0.0) as rows:
        with beam.Pipeline(options=PipelineOptions(direct_running_mode="in_memory")) as pipeline:
            _ = pipeline | beam.Create(range(10)) | "Square" >> beam.Map(lambda x: x * x)
    assert any("Square" in row["stage"] or "Create" in row["stage"] for row in rows), rows
