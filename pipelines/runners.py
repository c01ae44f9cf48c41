"""Runner selection, with a DaskRunner that fixes two defects of Beam 2.77's DaskRunner.

Measured here (tests/test_dask.py shows each):
1. `DaskRunner.run_pipeline` computes only the bag of the *last applied* transform. A pipeline with several
   sinks (documents, rejected, manifest counts) silently runs just one branch.
2. `apply_dofn_to_bundle` collects a bundle's outputs *before* calling `finish_bundle`, so elements emitted
   from `finish_bundle` (Beam's own BatchElements, buffered writers) are silently lost.
3. Tagged outputs are not told apart: every consumer of a multi-output ParDo receives all of its outputs.

`DaskRunner` below computes every leaf of the graph, collects outputs after `finish_bundle`, keeps each
tagged output's tag and hands each consumer only the output it reads.
"""

from __future__ import annotations

import functools


def apply_dofn_to_bundle(items, do_fn_invoker_args, do_fn_invoker_kwargs, tagged_receivers):
    """Beam's function, with the bundle's outputs collected after `finish_bundle`, not before."""
    from apache_beam.pvalue import TaggedOutput
    from apache_beam.runners.common import DoFnInvoker

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


def dask_runner():
    import dask
    from apache_beam.runners.dask import dask_runner as beam_dask
    from apache_beam.runners.dask import transform_evaluator
    from apache_beam import pvalue
    from apache_beam.pipeline import PipelineVisitor
    from apache_beam.runners.dask.overrides import dask_overrides
    from apache_beam.transforms.sideinputs import SideInputMap

    transform_evaluator.apply_dofn_to_bundle = apply_dofn_to_bundle

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

        def visit_transform(self, node):
            op_class = transform_evaluator.TRANSLATIONS.get(node.transform.__class__, transform_evaluator.NoOp)
            op = op_class(node, bag_kwargs=self.bag_kwargs)
            kwargs = {"input_bag": None, "side_inputs": None}
            inputs = [pc for pc in node.inputs if not isinstance(pc, pvalue.PBegin) and pc.producer in self.bags]
            if inputs:
                bags = [self._bag_of(pc) for pc in inputs]
                single = len(bags) == 1 and not isinstance(op, transform_evaluator.Flatten)
                kwargs["input_bag"] = bags[0] if single else bags
            if node.side_inputs:
                kwargs["side_inputs"] = [
                    SideInputMap(type(si), si._view_options(),
                                 transform_evaluator.DaskBagWindowedIterator(self._bag_of(si.pvalue),
                                                                             si._window_mapping_fn))
                    for si in node.side_inputs
                ]
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
            futures = client.compute(dask.optimize(*leaves))
            return _Result(client, futures)

    return DaskRunner()


def runner_for(name: str | None):
    """A runner object where Beam's lookup by name is not enough, else None (Beam resolves the name)."""
    if name == "DaskRunner":
        return dask_runner()
    return None
