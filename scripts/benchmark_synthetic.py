#!/usr/bin/env python
"""Time the synthetic generator (pairs/s, per-stage breakdown); optionally check byte identity. See --help."""

import sys

from data_tools.synthetic.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
