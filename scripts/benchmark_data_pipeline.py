#!/usr/bin/env python
"""Print how long the data pipeline takes: manifest, cold cache build, cached epochs. See --help."""

import sys

from data_tools.pipeline_benchmark_cli import main

if __name__ == "__main__":
    sys.exit(main())
