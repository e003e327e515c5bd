"""Ground every domain package stands on: configuration, database, clock, errors, ids."""
