"""Transactional outbox and durable delivery: email over SMTP (or .eml files),
later webhooks and postbacks."""
