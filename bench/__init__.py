"""Benchmarks of the quality bar's performance targets (P1, P3); run with `make bench`.

Never part of `make test`: each prints a ratio against a baseline measured in the same run and
writes `bench/results/<name>.json`.
"""
