"""A sensor that waits for a condition, next to the task that makes it true.

    airloop run examples/sensor_wait.py

``produce`` writes a marker file after a few seconds; ``wait_for_marker`` pokes
for it (a sync poke, offloaded) and sleeps on the loop between pokes; ``consume``
reads the file once the sensor has seen it.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from airloop import DAG, BaseSensor, Context, Param, task


class FileSensor(BaseSensor):
    def __init__(self, *, path_param: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.path_param = path_param

    def poke(self, context: Context) -> bool:
        path = marker(context.params[self.path_param], context.run_id)
        context.log.info("poking for %s", path)
        return path.exists()


def marker(folder: str, run_id: str) -> Path:
    safe = "".join(c if c.isalnum() else "_" for c in run_id)
    return Path(folder) / f"airloop-marker-{safe}"


with DAG(
    "sensor_wait",
    params={
        "folder": Param(tempfile.gettempdir(), type=str),
        "delay": Param(1.5, type=float),
    },
    tags=["example"],
) as dag:

    @task
    async def produce(params: dict[str, object], run_id: str) -> str:
        await asyncio.sleep(float(params["delay"]))  # type: ignore[arg-type]
        path = marker(str(params["folder"]), run_id)
        path.write_text("ready\n")
        return str(path)

    sensor = FileSensor(
        task_id="wait_for_marker",
        path_param="folder",
        poke_interval=0.25,
        timeout=60,
        exponential_backoff=False,
    )

    @task
    def consume(path: str) -> str:
        text = Path(path).read_text().strip()
        Path(path).unlink()
        return text

    produced = produce()
    sensor >> consume(produced)
