"""Everything about data: names, manifests, splits, images, cache, transforms, datasets."""
