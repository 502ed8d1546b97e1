"""Connections and Variables: Airflow's model, looked up in the environment, a secrets backend, then the metadata database (encrypted at rest)."""
