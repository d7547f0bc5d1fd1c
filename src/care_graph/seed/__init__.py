"""Demo data that looks real: a seeded generator (same seed, same rows) and a COPY loader."""
