"""Training loop, checkpoints, teacher-logit cache and evaluation passes.

Defaults shared by every command live here, in a module that imports nothing heavy (the CLI reads
them to write its --help).
"""

#: Stop fine-tuning a teacher after the first epoch whose training accuracy reaches this (launder
#: place, launder run, RunConfig). 0, None or "none" switch the stop off.
DEFAULT_TARGET_ACCURACY = 0.95
