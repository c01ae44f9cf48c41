"""The DirectRunner streams each bundle's input in chunks (pipelines.runners.stream_direct_runner_inputs)."""

from __future__ import annotations

import threading
from collections import Counter

import apache_beam as beam
from apache_beam import coders
from apache_beam.coders.coder_impl import create_InputStream
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import execution, fn_runner
from apache_beam.runners.worker import data_plane
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import core, window

from pipelines import runners


def _buffer(n_keys: int) -> execution.GroupingBuffer:
    windowed = lambda coder: coders.WindowedValueCoder(coder, coders.coders.GlobalWindowCoder())  # noqa: E731
    pre = windowed(coders.TupleCoder((coders.StrUtf8Coder(), coders.VarIntCoder())))
    post = windowed(coders.TupleCoder((coders.StrUtf8Coder(), coders.IterableCoder(coders.VarIntCoder()))))
    buffer = execution.GroupingBuffer(pre, post, core.Windowing(window.GlobalWindows()))
    for i in range(n_keys):
        for value in (i, i + 1):
            buffer.append(pre.encode(window.GlobalWindows.windowed_value((f"key-{i}", value))))
    buffer.decoded = post  # the coder that reads the partitions back
    return buffer


def _elements(buffer, chunks: list[bytes]) -> Counter:
    impl, out = buffer.decoded.get_impl(), Counter()
    for chunk in chunks:
        stream = create_InputStream(chunk)
        while stream.size() > 0:
            key, values = impl.decode_from_stream(stream, True).value
            out[(key, tuple(values))] += 1
    return out


def test_partition_cuts_each_workers_share_into_chunks_of_whole_keys():
    runners.stream_direct_runner_inputs()
    patched = execution.GroupingBuffer.partition
    assert patched.streams_chunks
    n_keys, workers = 3 * runners._KEYS_PER_CHUNK * 2 + 5, 2
    streamed = _buffer(n_keys)
    parts = streamed.partition(workers)
    assert len(parts) == workers
    assert all(len(chunks) > 1 for chunks in parts)
    whole = [_elements(streamed, chunks) for chunks in parts]
    # Every key arrives once, whole, with both of its values, on the worker Beam's round-robin gives it.
    for share in whole:
        assert all(values == (int(key[4:]), int(key[4:]) + 1) for key, values in share)
        assert set(share.values()) == {1}
    assert sum(len(share) for share in whole) == n_keys
    order = list(_buffer(n_keys)._table)  # the key order Beam deals from
    for i, share in enumerate(whole):
        expected = {order[j].decode("utf-8") for j in range(i, n_keys, workers)}
        assert {key for key, _ in share} == expected


class _Handler:
    """A worker handler whose data connection records the messages the runner sends."""

    def __init__(self, connection):
        self.data_conn = connection


class _RecordingConnection:
    def __init__(self):
        self.messages, self.closed, self.release = [], threading.Event(), threading.Event()

    def output_stream(self, instruction_id, transform_id):
        def flush(data):
            self.release.wait(10)  # a full receive queue on the worker's side
            self.messages.append(data)

        def close(data):
            flush(data)
            self.closed.set()

        return data_plane.SizeBasedBufferingClosableOutputStream(close, flush_callback=flush)


def test_input_goes_out_in_messages_of_bounded_size_while_the_bundle_runs():
    runners.stream_direct_runner_inputs()
    chunks = [bytes([i]) * (1 << 20) for i in range(30)]  # 30 chunks of 1 MB, each standing for whole elements
    connection = _RecordingConnection()
    manager = fn_runner.BundleManager.__new__(fn_runner.BundleManager)
    manager._worker_handler = _Handler(connection)
    manager._send_input_to_worker("bundle_1", "read", chunks)
    # It returned while the worker was not reading, so the bundle can start and drain the queue.
    assert not connection.closed.is_set() and not connection.messages
    connection.release.set()
    assert connection.closed.wait(10)
    assert len(connection.messages) >= 3
    assert max(len(m) for m in connection.messages) <= data_plane._DEFAULT_SIZE_FLUSH_THRESHOLD + (1 << 20)
    assert b"".join(connection.messages) == b"".join(chunks)


def test_grouped_pipeline_on_two_worker_processes_gets_every_key_once():
    n_keys = 3 * 2 * runners._KEYS_PER_CHUNK  # three chunks per worker
    options = PipelineOptions(direct_num_workers=2, direct_running_mode="multi_processing")
    with beam.Pipeline(runner=runners.runner_for("DirectRunner"), options=options) as pipeline:
        sums = (
            pipeline
            | beam.Create([(k % n_keys, 1) for k in range(2 * n_keys)])
            | beam.GroupByKey()
            | beam.MapTuple(lambda key, ones: (key, sum(ones)))
        )
        assert_that(sums, equal_to([(key, 2) for key in range(n_keys)]))
    assert execution.GroupingBuffer.partition.streams_chunks
