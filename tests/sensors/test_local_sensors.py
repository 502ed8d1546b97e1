"""The local sensors on a real engine: each succeeds, and times out or soft-fails.
PythonSensor and BashSensor run real code and real bash; FileSensor and BashSensor see
a file the test creates while they wait."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, DagRunState, PokeReturnValue, TaskState, task
from airloop.engine.engine import Engine
from airloop.exceptions import DagDefinitionError
from airloop.operators import BashOperator
from airloop.sensors import (
    BashSensor,
    DateTimeSensor,
    DayOfWeekSensor,
    FileSensor,
    PythonSensor,
    TimeDeltaSensor,
    TimeSensor,
    WeekDay,
)
from airloop.settings import Settings

MONDAY = datetime(2026, 5, 4, 6, tzinfo=UTC)  # a Monday

FAST: dict[str, Any] = {"poke_interval": 0.05, "timeout": 0.3}


def states(result: Any) -> dict[str, str]:
    return {t: s.value for t, s in result.task_states.items()}


def errors(result: Any) -> dict[str, str | None]:
    return {t.task_id: t.error for t in result.tasks}


async def test_python_sensor_pokes_until_true_with_arguments_and_context() -> None:
    calls: list[tuple[Any, ...]] = []

    def ready(limit: int, ds: str, templates_dict: dict[str, str], *, unit: str) -> Any:
        calls.append((limit, ds, templates_dict["day"], unit))
        if len(calls) < limit:
            return False
        return PokeReturnValue(True, xcom_value=f"{len(calls)} {unit}")

    async def never() -> bool:
        return False

    with DAG("python_sensors", params={"unit": "none"}) as dag:
        PythonSensor(
            task_id="ready",
            python_callable=ready,
            op_args=[3],
            op_kwargs={"unit": "{{ params.unit }}"},
            templates_dict={"day": "{{ ds_nodash }}"},
            poke_interval=0.01,
        )
        PythonSensor(task_id="never", python_callable=never, **FAST)
        PythonSensor(task_id="never_soft", python_callable=never, soft_fail=True, **FAST)

    result = await dag.atest(logical_date=MONDAY, params={"unit": "pokes"})
    assert states(result) == {"ready": "success", "never": "failed", "never_soft": "skipped"}
    assert result.xcom("ready") == "3 pokes"
    assert calls == [(3, "2026-05-04", "20260504", "pokes")] * 3
    assert "timed out" in (errors(result)["never"] or "")


async def test_bash_sensor_waits_for_a_file_the_test_creates(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    with DAG("bash_sensors") as dag:
        BashSensor(task_id="wait", bash_command=f"test -e {flag}", poke_interval=0.05)
        BashSensor(task_id="never", bash_command="exit 1", **FAST)
        BashSensor(task_id="never_soft", bash_command="exit 1", soft_fail=True, **FAST)
        BashSensor(task_id="wrong_code", bash_command="exit 3", retry_exit_code=1, **FAST)
    async with Engine(Settings(home=tmp_path / "home")) as engine:
        run = await engine.start_run(dag)
        await _log_matches(engine, run.run_pk, "wait", r"(?s)(poking with bash.*){2}")
        flag.touch()
        result = await asyncio.wait_for(asyncio.shield(run.done), 30)
        rows = {r.task_id: r for r in await engine.store.task_instances(result.run_pk)}
    assert {t: r.state for t, r in rows.items()} == {
        "wait": "success",
        "never": "failed",
        "never_soft": "skipped",
        "wrong_code": "failed",
    }
    assert rows["wrong_code"].error == (
        "FailTask: sensor 'wrong_code': bash command exited with code 3 (retry_exit_code is 1)"
    )
    assert "timed out" in rows["never"].error


async def test_bash_sensor_soft_fail_skips_on_a_wrong_exit_code(tmp_path: Path) -> None:
    # Airflow's BaseSensorOperator turns the AirflowFailException of a code other than
    # retry_exit_code into a skip with soft_fail=True.
    with DAG("bash_sensor_soft") as dag:
        BashSensor(
            task_id="wrong_code_soft",
            bash_command="exit 3",
            retry_exit_code=1,
            soft_fail=True,
            **FAST,
        )
    async with Engine(Settings(home=tmp_path / "home")) as engine:
        result = await engine.run(dag)
        (row,) = await engine.store.task_instances(result.run_pk)
    assert row.state == "skipped"
    assert row.error is None or "exited with code 3" in row.error


async def test_file_sensor_sees_a_file_created_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "data"
    (base / "in" / "deep").mkdir(parents=True)
    monkeypatch.setenv(
        "AIRLOOP_CONN_MY_FS", f'{{"conn_type": "fs", "extra": {{"path": "{base}"}}}}'
    )
    with DAG("file_sensors", params={"name": "day"}) as dag:
        FileSensor(
            task_id="glob",
            filepath="in/**/{{ params.name }}-*.csv",
            recursive=True,
            fs_conn_id="my_fs",
            poke_interval=0.05,
        )
        FileSensor(task_id="missing", filepath=str(base / "nothing.txt"), **FAST)
        FileSensor(task_id="missing_soft", filepath=str(base / "x*"), soft_fail=True, **FAST)
        FileSensor(task_id="no_conn", filepath="a", fs_conn_id="undefined_fs", **FAST)
    async with Engine(Settings(home=tmp_path / "home")) as engine:
        run = await engine.start_run(dag)
        await _log_matches(engine, run.run_pk, "glob", r"(?s)(poking for file.*){2}")
        (base / "in" / "deep" / "day-1.csv").write_text("x")
        result = await asyncio.wait_for(asyncio.shield(run.done), 30)
        rows = {r.task_id: r for r in await engine.store.task_instances(result.run_pk)}
        log = await _log_matches(engine, run.run_pk, "glob", "found")
    assert {t: r.state for t, r in rows.items()} == {
        "glob": "success",
        "missing": "failed",
        "missing_soft": "skipped",
        "no_conn": "failed",
    }
    assert f"found {base}/in/deep/day-1.csv" in log
    assert "connection 'undefined_fs' not found" in rows["no_conn"].error


async def test_time_sensors_succeed_or_time_out() -> None:
    now = datetime.now(UTC)
    later = (now + timedelta(hours=2)).time() if now.hour < 21 else time_of_day(23, 59, 59)
    today = now.strftime("%A")
    tomorrow = (now + timedelta(days=1)).strftime("%A")
    with DAG("time_sensors", params={"when": "", "bad": ""}) as dag:
        TimeSensor(task_id="time_past", target_time=(now - timedelta(minutes=1)).time())
        TimeSensor(task_id="time_later", target_time=later, soft_fail=True, **FAST)
        TimeDeltaSensor(task_id="delta", delta=timedelta(seconds=0.2))
        DateTimeSensor(task_id="when", target_time="{{ params.when }}")
        DateTimeSensor(task_id="when_dt", target_time=now - timedelta(days=1))
        DateTimeSensor(task_id="when_far", target_time="2999-01-01T00:00:00", **FAST)
        DateTimeSensor(task_id="when_bad", target_time="{{ params.bad }}", **FAST)
        DayOfWeekSensor(task_id="dow", week_day={today, WeekDay.SUNDAY})
        DayOfWeekSensor(task_id="dow_tomorrow", week_day=tomorrow, **FAST)
        DayOfWeekSensor(
            task_id="dow_logical", week_day="monday", use_task_logical_date=True, **FAST
        )
        DayOfWeekSensor(
            task_id="dow_logical_no",
            week_day=[WeekDay.TUESDAY],
            use_task_logical_date=True,
            soft_fail=True,
            **FAST,
        )
    when = (datetime.now(UTC) + timedelta(seconds=0.2)).isoformat()
    result = await dag.atest(logical_date=MONDAY, params={"when": when, "bad": "not a date"})
    found = states(result)
    assert found == {
        "time_past": "success",
        "time_later": "skipped",
        "delta": "success",  # MONDAY + 0.2 s is long past
        "when": "success",
        "when_dt": "success",
        "when_far": "failed",
        "when_bad": "failed",
        "dow": "success",
        "dow_tomorrow": "failed",
        "dow_logical": "success",
        "dow_logical_no": "skipped",
    }
    assert "'not a date' is not an ISO 8601 date and time" in (errors(result)["when_bad"] or "")
    assert "timed out" in (errors(result)["when_far"] or "")


async def test_time_delta_counts_from_the_logical_date() -> None:
    start = datetime.now(UTC)
    with DAG("delta_from_logical_date") as dag:
        TimeDeltaSensor(task_id="soon", delta=timedelta(seconds=0.3))
        TimeDeltaSensor(task_id="far", delta=timedelta(hours=1), **FAST)
    result = await dag.atest(logical_date=start)
    assert states(result) == {"soon": "success", "far": "failed"}
    assert datetime.now(UTC) >= start + timedelta(seconds=0.3)


def test_definition_errors_name_the_argument() -> None:
    with DAG("bad") as dag:
        with pytest.raises(DagDefinitionError, match="'Funday' is not a day of the week"):
            DayOfWeekSensor(task_id="d", week_day="Funday")
        with pytest.raises(DagDefinitionError, match="skip_on_exit_code must be an int"):
            BashOperator(task_id="b", bash_command="true", skip_on_exit_code="99")
        with pytest.raises(DagDefinitionError, match="unknown output_encoding"):
            BashOperator(task_id="e", bash_command="true", output_encoding="nope")
        with pytest.raises(DagDefinitionError, match=r"target_time must be a datetime\.time"):
            TimeSensor(task_id="t", target_time="10:00")
        with pytest.raises(DagDefinitionError, match="unknown argument 'bash_cmd'"):
            BashOperator(task_id="u", bash_command="true", bash_cmd="x")

        with pytest.raises(DagDefinitionError, match="must be a plain def"):

            @task.bash
            async def not_sync() -> str:
                return "true"

        @task.bash
        def mapped(n: int) -> str:
            return f"echo {n}"

        with pytest.raises(DagDefinitionError, match="mapping"):
            mapped.expand(n=[1, 2])
    assert "mapped" not in dag.task_dict


async def _log_matches(engine: Engine, run_pk: int, task_id: str, pattern: str) -> str:
    async with asyncio.timeout(30):
        while True:
            paths = {r.task_id: r.path for r in await engine.store.log_paths(run_pk)}
            if task_id in paths:
                path = Path(paths[task_id])
                text = await asyncio.to_thread(_read, path)
                if re.search(pattern, text):
                    return text
            await asyncio.sleep(0.05)


__all__ = ["DagRunState", "TaskState"]


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
