#!/usr/bin/env python
"""Train a classical or CNN baseline with SAN's splits, metrics and run records. See --help."""

import sys

from san.cli.train import train_baseline_main

if __name__ == "__main__":
    sys.exit(train_baseline_main())
