"""Dense whole-volume prediction."""
