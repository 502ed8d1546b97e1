"""The everyday operators, async from the ground up (Airflow's class and argument names)."""

# -- cross-DAG (issue 12) -- one block per area: explicit re-exports, no shared __all__
from airloop.operators.trigger_dagrun import TriggerDagRunOperator as TriggerDagRunOperator
