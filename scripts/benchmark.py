#!/usr/bin/env python
"""Benchmark every method under the mixed and leave-one-river-out protocols. See --help."""

import sys

from san.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
