"""Reorientation, resampling, normalisation and cropping, with their exact inverse."""
