#!/usr/bin/env python
"""Render the synthetic three-river heavy-mineral dataset (PPL/XPL pairs, published layout). See --help."""

import sys

from data_tools.synthetic.cli import main

if __name__ == "__main__":
    sys.exit(main())
