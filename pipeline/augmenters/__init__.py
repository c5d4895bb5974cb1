"""Augmentation methods. Importing this package registers every method in `REGISTRY`."""

from kdaug.augmenters import augpro_fgsm, augpro_mix, eda, knn, replace, synonym  # noqa: F401  (registers `augpro-fgsm`, `augpro-mix`, `eda`, `knn`, `knn-teacher`, `random`, `synonym`)
from kdaug.augmenters.base import ORIGINAL, REGISTRY, Augmenter, AugmentOptions, create, original_row

__all__ = ["ORIGINAL", "REGISTRY", "AugmentOptions", "Augmenter", "create", "original_row"]
