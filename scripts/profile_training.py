#!/usr/bin/env python
"""Print where a training step's time goes (data wait, forward, backward, optimizer). See --help."""

import sys

from san.cli.profile import main

if __name__ == "__main__":
    sys.exit(main())
