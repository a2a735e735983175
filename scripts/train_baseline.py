#!/usr/bin/env python
"""Train a classical or CNN baseline with SAN's splits, metrics and run records. See --help."""

import sys

from baselines.cli import train_baseline_main

if __name__ == "__main__":
    sys.exit(train_baseline_main())
