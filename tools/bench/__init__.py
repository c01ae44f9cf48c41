"""Benchmarks; results are written down in the README."""
