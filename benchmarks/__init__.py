"""Benchmarks: `make bench` runs each module here and prints its figures beside its targets.

Speed and size are measured here, never asserted in a timed test.
"""
