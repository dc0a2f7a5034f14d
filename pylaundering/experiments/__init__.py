"""Whole experiments: `launder run` (all phases plus controls), its config and its report."""
