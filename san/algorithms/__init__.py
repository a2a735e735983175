"""The deep algorithms on the Siamese pair classifier; importing this package registers them."""

from san.algorithms.base import Algorithm
from san.algorithms.cdann import CDANN
from san.algorithms.dg import CORAL, MMD, SWAD, GroupDRO, InterDomainMixup, MixStyleDG, VREx
from san.algorithms.erm import ERM
from san.algorithms.published import PublishedSAN
from san.algorithms.san import SAN

__all__ = [
    "CDANN",
    "CORAL",
    "ERM",
    "MMD",
    "SAN",
    "SWAD",
    "Algorithm",
    "GroupDRO",
    "InterDomainMixup",
    "MixStyleDG",
    "PublishedSAN",
    "VREx",
]
