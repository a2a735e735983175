"""Everything about data: names, manifests, splits, images, cache, transforms, datasets."""

# The one version number of the distribution (setup.cfg reads it); this package is the lowest layer,
# so every command's --version can reach it.
__version__ = "0.1.0"

import os as _os

# albumentations asks PyPI for a newer release when it is imported, unless told not to; a default run
# makes no network connection, so the opt-out is set before any module here can import it.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
