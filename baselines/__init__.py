"""Methods SAN is compared with; importing this package registers the CNN baselines (vgg16, resnet34)."""

from baselines import cnn  # noqa: F401  (registers the algorithms)
