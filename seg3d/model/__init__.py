"""The DeepMedic network and the one place that computes its sizes."""
