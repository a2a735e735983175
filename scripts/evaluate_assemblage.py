#!/usr/bin/env python
"""Quantifiers under the artificial prevalence protocol, SVM, leave-one-river-out. See --help."""

import sys

from baselines.assemblage_study_cli import assemblage_study_main

if __name__ == "__main__":
    sys.exit(assemblage_study_main())
