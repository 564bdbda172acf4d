"""Benchmarks (``nox -s bench``): figures come from here, never from timed unit tests."""
