"""DAGs of the Bash/Python operator tests (loaded by file: the process and Dask
executors rebuild their tasks from it)."""

from __future__ import annotations

from airloop import DAG, task
from airloop.operators import BashOperator, EmptyOperator, PythonOperator

# Each tree prints its processes' pids; MARK (from params) tags them for the tests.
TREE = (
    'sleep 300 & echo "child $!"; '
    '(sleep 300 & echo "child $!"; wait) & echo "child $!"; '
    'echo "leader $$"; wait'
)
MARKED_ENV = {"MARK": "{{ params.mark }}"}

with DAG(
    "bash_basics", params={"where": "here", "mark": ""}, template_searchpath="scripts"
) as bash_basics:
    BashOperator(
        task_id="templated",
        bash_command='echo "day {{ ds }}"; echo to stderr >&2; echo "last {{ params.where }}"',
    )
    BashOperator(task_id="script", bash_command="report.sh")
    BashOperator(
        task_id="env_only",
        bash_command='echo "${ONLY:-unset}|${HOME:-nohome}|$AIRFLOW_CTX_TASK_ID"',
        env={"ONLY": "{{ params.where }}"},
    )
    BashOperator(
        task_id="env_appended",
        bash_command='echo "$ONLY|${PATH:+haspath}"',
        env={"ONLY": "yes"},
        append_env=True,
    )
    BashOperator(task_id="in_cwd", bash_command="pwd", cwd="/tmp")
    BashOperator(task_id="skips", bash_command="echo skipping; exit 99")
    BashOperator(task_id="skips_on_list", bash_command="exit 7", skip_on_exit_code=[3, 7])
    BashOperator(task_id="fails", bash_command="echo about to fail; exit 1", skip_on_exit_code=None)
    BashOperator(task_id="no_cwd", bash_command="true", cwd="/nonexistent/airloop/dir")
    BashOperator(task_id="no_bash", bash_command="true", env={"PATH": "/nonexistent"})
    BashOperator(
        task_id="processed",
        bash_command="echo '[1, 2]'",
        output_processor=lambda out: len(out),
    )
    BashOperator(
        task_id="leaves_one",
        bash_command='sleep 300 & echo "child $!"; echo done',
        env=MARKED_ENV,
        append_env=True,
    )

    @task.bash(env={"N": "{{ params.where }}"})
    def built(count: int) -> str:
        return f'echo "count {count} $N {{{{ ds }}}}"'

    built(3)

    def add(a: int, b: int, ds: str, templates_dict: dict[str, str]) -> list[object]:
        return [a + b, ds, templates_dict["day"]]

    PythonOperator(
        task_id="python",
        python_callable=add,
        op_args=[1],
        op_kwargs={"b": 2},
        templates_dict={"day": "{{ ds_nodash }}"},
    )
    EmptyOperator(task_id="empty")


with DAG("bash_timeout", params={"mark": ""}) as bash_timeout:
    BashOperator(
        task_id="tree", bash_command=TREE, env=MARKED_ENV, append_env=True, execution_timeout=5
    )

with DAG("bash_cancel", params={"mark": ""}) as bash_cancel:
    BashOperator(task_id="tree", bash_command=TREE, env=MARKED_ENV, append_env=True)

with DAG("bash_stubborn", params={"mark": ""}) as bash_stubborn:
    # Ignores SIGTERM: SIGKILL after the grace.
    BashOperator(
        task_id="tree",
        bash_command="trap '' TERM; " + TREE,
        env=MARKED_ENV,
        append_env=True,
        execution_timeout=3,
    )
