#!/usr/bin/env python
"""Convert the published feature release (<River>_<train|val>_<cross|plane>.txt) into a feature table
CSV. See --help."""

import sys

from baselines.import_features_cli import main

if __name__ == "__main__":
    sys.exit(main())
