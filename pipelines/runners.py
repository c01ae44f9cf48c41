"""Runner selection, with a DaskRunner that fixes four defects of Beam 2.77's DaskRunner.

Measured here (tests/test_cluster.py shows each):
1. `DaskRunner.run_pipeline` computes only the bag of the *last applied* transform. A pipeline with several
   sinks (documents, rejected, manifest counts) silently runs just one branch.
2. `apply_dofn_to_bundle` collects a bundle's outputs *before* calling `finish_bundle`, so elements emitted
   from `finish_bundle` (Beam's own BatchElements, buffered writers) are silently lost.
3. Tagged outputs are not told apart: every consumer of a multi-output ParDo receives all of its outputs.
4. A side input is a lazy bag that every partition of the consuming ParDo computes again, upstream pipeline
   included; with side inputs that depend on side inputs, the work multiplies (the built-in sample did not
   finish in 15 minutes).

`DaskRunner` below computes every leaf of the graph, collects outputs after `finish_bundle`, keeps each
tagged output's tag, hands each consumer only the output it reads, and makes each side input one node of the
Dask graph, computed once and handed to every partition.

`stream_direct_runner_inputs` makes the DirectRunner stream a bundle's input to its worker instead of sending it
as one message; see its docstring.
"""

from __future__ import annotations

import functools
import math
import os
import threading

_KEYS_PER_CHUNK = 4096


def apply_dofn_to_bundle(items, do_fn_invoker_args, do_fn_invoker_kwargs, tagged_receivers, side_views=(),
                         *side_values):
    """Beam's bundle loop, with the outputs collected after `finish_bundle`, not before, and side inputs built
    from values the graph computed once (`side_views[i]` describes `side_values[i]`)."""
    from apache_beam.pvalue import TaggedOutput
    from apache_beam.runners.common import DoFnInvoker
    from apache_beam.transforms.sideinputs import SideInputMap

    if side_views:
        maps = [SideInputMap(view, options, values) for (view, options), values in zip(side_views, side_values)]
        do_fn_invoker_kwargs = {**do_fn_invoker_kwargs, "side_inputs": maps}
    start = len(tagged_receivers.values)
    invoker = DoFnInvoker.create_invoker(*do_fn_invoker_args, **do_fn_invoker_kwargs)
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(item)
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    results = [
        TaggedOutput(v.tag, v.value.value) if isinstance(v, TaggedOutput) else v.value
        for v in tagged_receivers.values[start:]
    ]
    del tagged_receivers.values[start:]
    return results


def _main_output(element) -> bool:
    from apache_beam.pvalue import TaggedOutput

    return not isinstance(element, TaggedOutput)


def _has_tag(element, tag: str) -> bool:
    from apache_beam.pvalue import TaggedOutput

    return isinstance(element, TaggedOutput) and element.tag == tag


def _untag(element):
    return element.value


def _concat(*partitions) -> list:
    return [element for partition in partitions for element in partition]


def dask_runner():
    import dask
    from apache_beam.runners.dask import dask_runner as beam_dask
    from apache_beam.runners.dask import transform_evaluator
    from apache_beam import pvalue
    from apache_beam.pipeline import PipelineVisitor
    from apache_beam.runners.dask.overrides import dask_overrides
    from apache_beam.runners.common import DoFnContext, DoFnSignature, _OutputHandler
    from apache_beam.transforms.core import DoFn

    class _ParDo(transform_evaluator.ParDo):
        """Beam's ParDo translation; side inputs arrive as computed values, one argument each."""

        def apply(self, input_bag, side_inputs=None):
            transform = self.transform
            args, kwargs = transform.raw_side_inputs
            main_input = next(iter(self.applied.main_inputs.values()))
            window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
            receivers = transform_evaluator.OneReceiver()
            invoker_args = [
                DoFnSignature(transform.fn),
                _OutputHandler(window_fn=window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
                               per_element_output_counter=None, output_batch_converter=None,
                               process_yields_batches=False, process_batch_yields_elements=False),
            ]
            invoker_kwargs = dict(context=DoFnContext(transform.label, state=None), side_inputs=None,
                                  input_args=list(args), input_kwargs=kwargs, user_state_context=None,
                                  bundle_finalizer_param=DoFn.BundleFinalizerParam())
            views, values = zip(*side_inputs) if side_inputs else ((), ())
            return input_bag.map(transform_evaluator.get_windowed_value, window_fn).map_partitions(
                apply_dofn_to_bundle, invoker_args, invoker_kwargs, receivers, list(views), *values)

    class _BagVisitor(PipelineVisitor):
        """Translate each transform to a Dask bag; a consumer sees only the tagged output it reads."""

        def __init__(self, bag_kwargs):
            self.bag_kwargs = bag_kwargs
            self.bags = {}

        def _bag_of(self, pcoll):
            bag = self.bags[pcoll.producer]
            if pcoll.tag is None:
                return bag.filter(_main_output)
            return bag.filter(functools.partial(_has_tag, tag=pcoll.tag)).map(_untag)

        def _side_value(self, si):
            """The side input's elements as one Delayed list, sharing the graph's keys for its producer."""
            bag = self._bag_of(si.pvalue).map(transform_evaluator.get_windowed_value, si._window_mapping_fn)
            return dask.delayed(_concat, pure=True)(*bag.to_delayed(optimize_graph=False))

        def visit_transform(self, node):
            op_class = transform_evaluator.TRANSLATIONS.get(node.transform.__class__, transform_evaluator.NoOp)
            op_class = _ParDo if op_class is transform_evaluator.ParDo else op_class
            op = op_class(node, bag_kwargs=self.bag_kwargs)
            kwargs = {"input_bag": None, "side_inputs": None}
            inputs = [pc for pc in node.inputs if not isinstance(pc, pvalue.PBegin) and pc.producer in self.bags]
            if inputs:
                bags = [self._bag_of(pc) for pc in inputs]
                single = len(bags) == 1 and not isinstance(op, transform_evaluator.Flatten)
                kwargs["input_bag"] = bags[0] if single else bags
            if node.side_inputs:
                kwargs["side_inputs"] = [((type(si), si._view_options()), self._side_value(si))
                                         for si in node.side_inputs]
            self.bags[node] = op.apply(**kwargs)

    class _Result(beam_dask.DaskRunnerResult):
        """Closes its connection to the cluster once the pipeline is done, so nothing keeps reconnecting."""

        def wait_until_finish(self, duration=None):
            try:
                return super().wait_until_finish(duration)
            finally:
                if self.state in ("DONE", "FAILED"):
                    self.client.close()

    class DaskRunner(beam_dask.DaskRunner):
        """Beam's DaskRunner, computing every sink of the pipeline rather than the last one only."""

        def run_pipeline(self, pipeline, options):
            import dask.distributed as ddist

            dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(
                drop_default=True, current_only=True)
            bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(dask_options)
            client = ddist.Client(**dask_options)
            pipeline.replace_all(dask_overrides())
            visitor = _BagVisitor(bag_kwargs)
            pipeline.visit(visitor)
            consumed = {
                pcoll.producer
                for node in visitor.bags
                for pcoll in list(node.inputs) + [si.pvalue for si in node.side_inputs]
                if getattr(pcoll, "producer", None) is not None
            }
            leaves = [bag for node, bag in visitor.bags.items() if node not in consumed]
            # No graph optimisation: fusing the bags' linear chains around the side-input nodes (which depend
            # on one bag and feed another) produced a cyclic graph on the whole pipeline.
            futures = client.compute(leaves, optimize_graph=False)
            return _Result(client, futures)

    return DaskRunner()


def stream_direct_runner_inputs() -> None:
    """Make Beam 2.77's DirectRunner (its FnApiRunner) stream each bundle's input to the worker.

    Unpatched, the runner encodes a worker's whole share of a shuffle as one byte string
    (`GroupingBuffer.partition`) and sends it as one message before the bundle starts, so the worker holds all of
    it at once: dedup's largest worker grew from 921 to 1,644 MB between 200k and 400k documents
    (tools/bench/RESULTS_dedup.md). Here a share is cut into chunks of whole keys, and each key still goes to the
    same worker. The chunks go out as messages of about 10 MB, sent from a thread while the bundle runs, so the
    worker's receive queue (5 messages) holds the sender back. Each worker receives the same elements as
    before, in another order, and babelbeam's output does not depend on order.
    """
    from apache_beam.runners.portability.fn_api_runner import execution, fn_runner
    from apache_beam.runners.worker import data_plane

    if getattr(execution.GroupingBuffer.partition, "streams_chunks", False):
        return
    whole_partition = execution.GroupingBuffer.partition

    def partition(self, n: int) -> list[list[bytes]]:
        # Beam deals keys round-robin over the parts; with n * k parts, part j holds keys j mod n*k, so worker i
        # taking parts i, i+n, ... receives exactly the keys it had before, in k chunks.
        k = max(1, math.ceil(len(self._table) / (n * _KEYS_PER_CHUNK)))
        parts = whole_partition(self, n * k)
        return [[chunk for part in parts[i::n] for chunk in part] for i in range(n)]

    def send_input_to_worker(self, process_bundle_id: str, read_transform_id: str, byte_streams) -> None:
        data_out = self._worker_handler.data_conn.output_stream(process_bundle_id, read_transform_id)

        def write() -> None:  # a failure in the thread is printed by threading's excepthook
            for chunk in byte_streams or []:
                data_out.write(chunk)
                data_out.maybe_flush()  # chunks hold whole elements, so any flush point is valid
            data_out.close()

        if isinstance(self._worker_handler.data_conn, data_plane.InMemoryDataChannel):
            write()  # the in-process worker reads its input only once the bundle starts, after this returns
        else:
            threading.Thread(target=write, name=f"send-{process_bundle_id}", daemon=True).start()

    partition.streams_chunks = True
    execution.GroupingBuffer.partition = partition
    fn_runner.BundleManager._send_input_to_worker = send_input_to_worker


def threads_per_bundle(runner: str | None, running_mode: str, num_workers: int) -> int:
    """Threads a DoFn may use without oversubscribing the machine. The DirectRunner's default in_memory mode runs
    one bundle at a time in this process, so an encoder may take every usable core; with more workers, or in
    its other modes, `num_workers` bundles run side by side and share the cores. Other runners' workers already
    run one bundle per core, so 1."""
    if runner not in (None, "DirectRunner"):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = num_workers if num_workers > 0 else cores  # Beam's 0: one worker per core
    if running_mode == "in_memory" and workers == 1:
        return cores
    return max(1, cores // workers)


def runner_for(name: str | None):
    """A runner object where Beam's lookup by name is not enough, else None (Beam resolves the name)."""
    if name == "DaskRunner":
        return dask_runner()
    if name in (None, "DirectRunner"):
        stream_direct_runner_inputs()
    return None
