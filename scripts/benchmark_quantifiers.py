#!/usr/bin/env python
"""Print milliseconds per sample of each quantifier, QuaPy's originals beside the faster ones. See --help."""

import sys

from san.cli.quantifier_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
