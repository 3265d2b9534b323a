"""Benchmarks of the quality bar's performance targets (P1 to P7); run with `make bench`.

Never part of `make test`: each prints its ratio or counts against a baseline or ceiling measured
in the same run and writes `bench/results/<name>.json`; `bench.charts` draws them.
"""
