"""The scan history: a store of every scan (SQLite or PostgreSQL, Alembic migrations),
drift between two scans, and first/last seen. Between the engine and the outputs: it
reads and writes the model, and the outputs render what it computes."""
