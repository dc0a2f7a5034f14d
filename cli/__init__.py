"""The `launder` command-line interface (installed as pylaundering.cli)."""
