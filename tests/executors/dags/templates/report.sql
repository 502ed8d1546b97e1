select '{{ ds }}' as day, {{ params.n }} as n -- {{ ti.xcom_pull(task_ids='seed') }}
