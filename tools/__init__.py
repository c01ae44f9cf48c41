"""Command-line tools: sample builder, evaluation harnesses, mixture inference."""
