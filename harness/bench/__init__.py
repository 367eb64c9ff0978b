"""Benchmarks: pytest-benchmark step timings (test_steps.py) and `python -m harness.bench throughput`, which
runs this project and transformers on the same random-weight checkpoint in the same process run."""
