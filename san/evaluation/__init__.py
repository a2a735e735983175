"""Evaluation: protocols, metrics, calibration and quantification maths."""
