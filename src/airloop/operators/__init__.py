"""The everyday operators, async from the ground up (Airflow's class and argument names)."""
