"""Flex Template entry point: Dataflow's launcher runs this file with the template parameters as flags.

The launcher must return once the job is submitted, so the job writes its own manifest (`--no_wait`)."""

import sys

from pipelines.build import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:] + ["--no_wait"]))
