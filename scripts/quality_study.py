#!/usr/bin/env python
"""Data-quality study: one corruption factor of the training split at several levels, each level an
ordinary resumable benchmark run; then a table and a curve against the level. See --help."""

import sys

from san.cli.quality import main

if __name__ == "__main__":
    sys.exit(main())
