"""Everything about data: names, manifests, splits, images, cache, transforms, datasets."""

# The one version number of the distribution (setup.cfg reads it); this package is the lowest layer,
# so every command's --version can reach it.
__version__ = "0.1.0"
