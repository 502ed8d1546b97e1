"""Browser tests: a DAG with params (the trigger form)."""

from airloop import DAG, Param, task

with DAG(
    "ui_params",
    params={
        "count": Param(3, type="integer", minimum=1, maximum=10, description="how many"),
        "greeting": Param("hello", type="string"),
    },
    tags=["ui-test"],
) as dag:

    @task
    def greet(params: dict[str, object]) -> str:
        return f"{params['greeting']} x{params['count']}"

    greet()
