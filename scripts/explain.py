#!/usr/bin/env python
"""Grad-CAM heat maps, a feature-space picture and a river probe of a trained deep run. See --help."""

import sys

from san.cli.predict import explain_main

if __name__ == "__main__":
    sys.exit(explain_main())
