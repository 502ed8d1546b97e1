"""The scheduler as a long-running service over a folder of DAG files."""
