"""Finding and loading DAG files."""
