"""Training loop, checkpoints, teacher-logit cache and evaluation passes."""
