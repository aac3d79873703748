"""Cases and datasets: which files make a case, and whether a dataset is usable."""
