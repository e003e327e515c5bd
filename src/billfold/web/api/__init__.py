"""JSON API under /v1."""
