#!/usr/bin/env python
"""Report a dataset's defects (imbalance, sizes, acquisition shift, duplicates, leakage). See --help."""

import sys

from data_tools.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
