"""Dense CRF and connected components, applied to class probabilities."""
