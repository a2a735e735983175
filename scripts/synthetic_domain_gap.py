#!/usr/bin/env python
"""Channel statistics and mixed vs leave-one-river-out accuracy of a colour-histogram SVM. See --help."""

import sys

from data_tools.synthetic.gap_cli import main

if __name__ == "__main__":
    sys.exit(main())
