#!/usr/bin/env python
"""Pair PPL/XPL images of a tree, validate them, and write a manifest CSV. See --help."""

import sys

from data_tools.manifest_cli import main

if __name__ == "__main__":
    sys.exit(main())
