#!/usr/bin/env python
"""Find likely label errors: out-of-fold probabilities within each river (never the test split),
ranked by confident learning (cleanlab). Writes a CSV and a review sheet PNG. See --help."""

import sys

from baselines.label_errors_cli import main

if __name__ == "__main__":
    sys.exit(main())
