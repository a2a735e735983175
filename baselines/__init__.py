"""Methods SAN is compared with: classical estimators on hand-crafted features, and CNN baselines.

Importing this package declares the CNN baselines (vgg16, resnet34) to san's algorithm registry;
``baselines.cnn`` (and so torch) is imported only when one of them is built, which keeps the
feature-extraction worker processes light.
"""

from san.algorithms.registry import register_lazy

register_lazy(("vgg16", "resnet34"), "baselines.cnn")
