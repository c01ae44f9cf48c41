"""Flex Template entry point: Dataflow's launcher runs this file with the template parameters as flags."""

import sys

from pipelines.build import run

if __name__ == "__main__":
    sys.exit(run())
