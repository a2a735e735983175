"""SAN: Siamese Adversarial Network for heavy-mineral grains from paired PPL/XPL micrographs.

Core library: backbones, networks, gradient reversal, the algorithm registry and contract,
the training engine, metrics, run records and tracking. Import submodules directly
(``from san.algorithms.registry import build_algorithm``); this package imports nothing heavy.
"""
