#!/usr/bin/env python
"""Classify PPL/XPL pairs with a trained run and report the sample's mineral assemblage. See --help."""

import sys

from san.cli.predict import predict_main

if __name__ == "__main__":
    sys.exit(predict_main())
