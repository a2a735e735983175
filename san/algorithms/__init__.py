"""The deep algorithms on the Siamese pair classifier; importing this package registers them."""

from san.algorithms.base import Algorithm
from san.algorithms.erm import ERM
from san.algorithms.san import SAN

__all__ = ["ERM", "SAN", "Algorithm"]
