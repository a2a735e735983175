#!/usr/bin/env python
"""Comparison tables (Markdown, CSV or LaTeX) and figures from run directories. See --help."""

import sys

from san.cli.tables import main

if __name__ == "__main__":
    sys.exit(main())
