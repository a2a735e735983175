#!/usr/bin/env python
"""Train SAN (or ERM, the same network without the adversary) and write a run record. See --help."""

import sys

from san.cli.train import train_san_main

if __name__ == "__main__":
    sys.exit(train_san_main())
