"""Placeholder replaced by the Typer app."""
def main() -> None:  # pragma: no cover
    raise SystemExit("launder: CLI not built yet")
