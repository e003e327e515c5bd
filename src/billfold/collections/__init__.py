"""Collections: autopay (and later retry schedules and dunning)."""
