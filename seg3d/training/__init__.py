"""The training loop, validation, checkpoints and the run folder."""
