"""Benchmarks (not run by `make test`)."""
