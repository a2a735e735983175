"""Networks: backbones, the Siamese encoder, fusions, heads and gradient reversal."""
