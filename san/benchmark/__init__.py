"""Benchmark grids: jobs, the runner, comparison tables and their figures."""
