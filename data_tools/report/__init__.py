"""The dataset report: composition, sizes, acquisition statistics, duplicates, problems, what to fix.

Entry point: :func:`data_tools.report.build.build_report` (``scripts/data_report.py``).
"""
