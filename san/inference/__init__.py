"""Using a trained model: predictor loading, test-time augmentation, prediction, the assemblage."""
