"""Methods SAN is compared with: classical estimators on hand-crafted features, and CNN baselines.

Every method is named in the one registry, :mod:`san.methods`, by import paths into this package
(``baselines.experiment``, ``baselines.predictor``, ``baselines.cnn``); importing this package
imports nothing heavy, which keeps the feature-extraction worker processes light.
"""
