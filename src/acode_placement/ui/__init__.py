"""The web console's static files (served by `serve` at /ui)."""
