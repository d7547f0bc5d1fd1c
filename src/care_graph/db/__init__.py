"""Data access: where PostgreSQL runs, its schema, and the SQL care_graph sends it."""
