#!/usr/bin/env python
"""Write a training-ready copy (cropped, resized, re-encoded) of an image tree, same layout. See --help."""

import sys

from data_tools.preprocess import main

if __name__ == "__main__":
    sys.exit(main())
