"""Browser tests: ``check`` fails until the marker file next to the DAG folder exists
(the test creates it, then clears the task), so the run fails first and succeeds
after a clear."""

from pathlib import Path

from airloop import DAG, task

MARKER = Path(__file__).resolve().parent.parent / "flaky.ok"

with DAG("ui_flaky", tags=["ui-test"]) as dag:

    @task(retries=0)
    def check() -> str:
        print("looking for", MARKER.name)
        if not MARKER.exists():
            raise RuntimeError(f"marker file {MARKER.name} is missing (fails on purpose)")
        return "marker found"

    check()
