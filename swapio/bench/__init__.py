"""``swapio bench``: the backend comparison benchmark (see docs/BENCHMARKS.md)."""
