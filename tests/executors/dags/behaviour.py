"""DAGs for the executor behaviour suite. A real file: process and Dask workers load
tasks from it by reference (path + ids), as they would a user's DAG file."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from typing import Any, ClassVar

from airloop import (
    DAG,
    BaseNotifier,
    BaseOperator,
    Context,
    SkipTask,
    delay,
    get_current_context,
    task,
    task_group,
)


def where() -> dict[str, Any]:
    return {"pid": os.getpid(), "thread": threading.current_thread().name}


with DAG("flow", params={"n": 3}) as flow:

    @task
    def numbers(params: dict[str, int]) -> list[int]:
        return list(range(params["n"]))

    @task
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    @task
    def square(x: int) -> int:
        return x * x

    @task
    async def combine(doubled: list[int], squared: list[int]) -> dict[str, Any]:
        return {"doubled": doubled, "squared": squared, **where()}

    @task
    def sync_where() -> dict[str, Any]:
        return where()

    @task
    async def async_where() -> dict[str, Any]:
        return where()

    n = numbers()
    combine(double.expand(x=n), square.expand(x=n))
    sync_where()
    async_where()


with DAG("failing") as failing:

    @task
    def boom() -> None:
        raise ValueError("boom in a sync task")

    @task
    async def aboom() -> None:
        raise KeyError("boom in an async task")

    @task
    def after(a: None, b: None) -> None: ...

    after(boom(), aboom())


with DAG("retrying") as retrying:

    @task(retries=2, retry_delay=0.01)
    def flaky_sync(try_number: int) -> int:
        if try_number < 2:
            raise ConnectionError(f"try {try_number} fails")
        return try_number

    @task(retries=2, retry_delay=0.01)
    async def flaky_async(try_number: int) -> int:
        if try_number < 3:
            raise ConnectionError(f"try {try_number} fails")
        return try_number

    flaky_sync()
    flaky_async()


with DAG("timeouts") as timeouts:

    @task(execution_timeout=0.5)
    def slow_sync() -> None:
        time.sleep(30)

    @task(execution_timeout=0.5)
    async def slow_async() -> None:
        await asyncio.sleep(30)

    @task(execution_timeout=0.5, retries=1, retry_delay=0.01)
    async def slow_then_fast(try_number: int) -> int:
        if try_number == 1:
            await asyncio.sleep(30)
        return try_number

    slow_sync()
    slow_async()
    slow_then_fast()


with DAG("cancelling") as cancelling:

    @task
    def sleepy_sync() -> None:
        for _ in range(300):
            time.sleep(0.1)

    @task
    async def sleepy_async() -> None:
        await asyncio.sleep(30)

    sleepy_sync()
    sleepy_async()


with DAG("dying") as dying:

    @task(retries=1, retry_delay=0.01)
    def dies_once(try_number: int) -> int:
        if try_number == 1:
            os._exit(3)  # the worker process dies (out of memory, segfault, kill -9...)
        return try_number

    dies_once()


with DAG("sync_off_loop") as sync_off_loop:
    # ADR 0010: a sync task runs off any event loop, whatever the executor.

    @task
    def sync_delay() -> str:
        delay(0.01)  # sleeps (it would raise BlockingOnLoopError on a loop's thread)
        return "slept"

    @task
    def sync_asyncio_run() -> int:
        async def inner() -> int:
            await asyncio.sleep(0.01)
            return 7

        return asyncio.run(inner())  # fails on a thread that already runs a loop

    @task
    def sync_no_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False

    sync_delay()
    sync_asyncio_run()
    sync_no_loop()


with DAG("printing") as printing:

    @task
    def sync_prints() -> None:
        print("printed by a sync task")
        print("to stderr from a sync task", file=sys.stderr)

    @task
    async def async_prints() -> None:
        print("printed by an async task")

    sync_prints()
    async_prints()


class Rendered(BaseOperator):
    """Template fields, a template file and the run context, rendered in the worker."""

    template_fields: ClassVar[tuple[str, ...]] = ("sql", "options")
    template_ext: ClassVar[tuple[str, ...]] = (".sql",)

    def __init__(self, *, sql: str, options: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.options = options

    def execute(self, context: Context) -> dict[str, Any]:
        return {"sql": self.sql, "options": self.options, **where()}


with DAG(
    "templated",
    params={"n": 5},
    template_searchpath="templates",
    user_defined_macros={"env": "test"},
    user_defined_filters={"twice": lambda s: s * 2},
) as templated:

    @task
    def seed() -> str:
        return "seeded"

    rendered = Rendered(
        task_id="rendered",
        sql="report.sql",
        options={
            "nested": ["{{ ds_nodash }}", ("{{ env }}", "{{ 'ab' | twice }}")],
            "interval": "{{ data_interval_start.isoformat() }}/{{ data_interval_end | ts }}",
            "ti": "{{ task_instance_key_str }} {{ ti.try_number }} {{ run_id }}",
        },
    )

    @task
    def sync_context(ds: str, ti: Any, **context: Any) -> dict[str, Any]:
        current = get_current_context()
        return {
            "ds": ds,
            "pulled": ti.xcom_pull(task_ids="seed"),
            "same": current["ti"].task_id == ti.task_id == "sync_context",
            "interval": context["data_interval_start"].isoformat(),
        }

    @task
    async def async_context(ti: Any, data_interval_end: Any) -> dict[str, Any]:
        current = get_current_context()
        return {
            "ds": current["ds"],
            "pulled": ti.xcom_pull(task_ids="seed"),
            "same": current["ti"].task_id == "async_context",
            "interval": data_interval_end.isoformat(),
        }

    seeded = seed()
    seeded >> [rendered, sync_context(), async_context()]


with DAG("branching") as branching:

    @task.branch
    def pick() -> str:
        return "chosen"

    @task
    def chosen() -> str:
        return "ran"

    @task
    def other() -> str:
        return "ran"

    @task(trigger_rule="none_failed_min_one_success")
    def join() -> str:
        return "joined"

    @task.short_circuit
    async def gate() -> bool:
        return False

    @task
    def gated() -> None:
        return None

    pick() >> [chosen(), other()] >> join()
    gate() >> gated()
with DAG("previous") as previous:

    @task
    def prev_success(**context: Any) -> list[str | None]:
        """The prev_*_success keys, as the worker got them (None: no earlier success)."""
        keys = ("prev_data_interval_start_success", "prev_data_interval_end_success")
        return [d.isoformat() if d else None for d in (context[k] for k in keys)]

    prev_success()
with DAG("rendered_store", params={"n": 7}) as rendered_store:
    Rendered(
        task_id="fields",
        sql="select '{{ ds }}'",
        options={"n": "{{ params.n }}", "plain": [1, 2]},
    )

    @task(retries=1, retry_delay=0)
    def flaky_args(day: str, n: str, ti: Any = None) -> str:
        if ti.try_number == 1:
            raise ValueError("first try fails after rendering")
        return f"{day}/{n}"

    flaky_args("{{ ds_nodash }}", n="{{ params.n }} on try {{ ti.try_number }}")


class Greet(BaseOperator):
    def __init__(self, *, name: str, greeting: str = "hello", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.greeting = greeting

    def execute(self, context: Context) -> str:
        return f"{self.greeting} {self.name}"


def to_kwargs(name: str) -> dict[str, Any]:
    """A .map() function: records where it ran (it must run in the worker, off the loop)."""
    return {"name": name.title(), "greeting": f"{os.getpid()}:{threading.current_thread().name}"}


with DAG("rich_mapping") as rich_mapping:

    @task
    def names() -> list[str]:
        return ["ann", "bob", "cy"]

    @task
    def numbers3() -> list[int]:
        return [1, 2]

    @task(map_index_template="{{ task.op_kwargs['x'] }}+{{ task.op_kwargs['y'] }}")
    async def add(x: int, y: int) -> int:
        return x + y

    @task
    def pair(p: list[Any]) -> str:
        return f"{p[0]}{p[1]}"

    add.expand_kwargs([{"x": 1, "y": 2}, {"x": 3, "y": 4}])
    Greet.partial(task_id="greet", map_index_template="{{ task.name }}").expand_kwargs(
        names().map(to_kwargs)
    )
    pair.override(task_id="short").expand(p=names().zip(numbers3()))
    pair.override(task_id="long").expand(p=names().zip(numbers3(), fillvalue=0))
# -- callbacks: each appends a line to the file named by the run's "out" param, so the
# test can read what ran wherever it ran (a thread, a worker process, a Dask worker).


def record(context: Any, line: str) -> None:
    with open(context["params"]["out"], "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def ti_line(kind: str, context: Any) -> str:
    return f"{kind} {context['ti'].task_id} {context['ti'].try_number}"


def on_execute(context: Any) -> None:
    record(context, ti_line("execute", context))


def on_success(context: Any) -> None:
    record(context, ti_line("success", context))


async def on_retry(context: Any) -> None:
    line = f"{ti_line('retry', context)} {type(context['exception']).__name__}"
    await asyncio.to_thread(record, context, line)


def on_failure(context: Any) -> None:
    record(context, f"{ti_line('failure', context)} {type(context['exception']).__name__}")


def on_skipped(context: Any) -> None:
    record(context, ti_line("skipped", context))


def raising_callback(context: Any) -> None:
    raise RuntimeError("callback broke")


async def hanging_async_callback(context: Any) -> None:
    await asyncio.sleep(3600)


def hanging_sync_callback(context: Any) -> None:
    time.sleep(10)  # abandoned after callback_timeout; returns on its own later


def dag_failure(context: Any) -> None:
    same = context["dag_run"].run_id == context["run_id"]
    record(context, f"dag_failure {context['dag'].dag_id} {context['reason']} {same}")


async def dag_success(context: Any) -> None:
    line = f"dag_success {context['dag'].dag_id} {context['reason']}"
    await asyncio.to_thread(record, context, line)


class FileNotifier(BaseNotifier):
    template_fields = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    async def notify(self, context: Any) -> None:
        await asyncio.to_thread(record, context, self.message)


with DAG(
    "callbacks",
    params={"out": "", "tag": "t"},
    default_args={"on_execute_callback": on_execute},
    on_failure_callback=[raising_callback, dag_failure],
    on_success_callback=dag_success,
) as callbacks:

    @task(
        on_success_callback=[
            on_success,
            FileNotifier("notified {{ ti.task_id }} {{ params.tag }} {{ ds }}"),
        ]
    )
    def cb_ok() -> int:
        return 1

    @task(
        retries=2,
        retry_delay=0.01,
        on_retry_callback=on_retry,
        on_failure_callback=on_failure,
        on_success_callback=on_success,
    )
    async def cb_flaky() -> None:
        raise ValueError("always")

    @task(on_skipped_callback=on_skipped, on_success_callback=on_success)
    def cb_skipper() -> None:
        raise SkipTask("not today")

    @task(
        on_execute_callback=[raising_callback, on_execute],
        on_success_callback=[
            raising_callback,
            hanging_async_callback,
            hanging_sync_callback,
            on_success,
        ],
    )
    def cb_bad() -> int:
        return 2

    cb_ok()
    cb_flaky()
    cb_skipper()
    cb_bad()


with DAG("callbacks_ok", params={"out": ""}, on_success_callback=dag_success) as callbacks_ok:

    @task(on_success_callback=on_success)
    async def only() -> int:
        return 3

    only()


class Pusher(BaseOperator):
    """A classic operator pushing a keyed XCom besides its return value."""

    def execute(self, context: Context) -> str:
        context["ti"].xcom_push("classic", {"from": "operator"})
        return "returned"


with DAG("xcom_keys") as xcom_keys:

    @task
    def push_sync(ti: Any) -> int:
        ti.xcom_push("sync_key", [1, 2])
        return 1

    @task
    async def push_async(ti: Any) -> None:
        await asyncio.sleep(0)
        ti.xcom_push("async_key", "a")

    @task
    def fan(x: int, ti: Any) -> int:
        ti.xcom_push("square", x * x)
        return x

    @task(multiple_outputs=True)
    def split() -> Any:
        return {"a": 1, "b": [2, 3]}

    @task(do_xcom_push=False)
    def quiet(ti: Any) -> str:
        ti.xcom_push("kept", True)
        return "dropped"

    @task
    def middle() -> None:
        return None

    @task
    def lonely() -> int:
        return 0

    @task
    async def pull_all(ti: Any, a: int, b: list[int]) -> dict[str, Any]:
        try:
            ti.xcom_pull(task_ids="lonely")
            refused = ""
        except Exception as exc:  # noqa: BLE001 - the message is what the test checks
            refused = str(exc)
        return {
            "sync_key": ti.xcom_pull(task_ids="push_sync", key="sync_key"),
            "async_key": ti.xcom_pull(task_ids="push_async", key="async_key"),
            "square_1": ti.xcom_pull(task_ids="fan", key="square", map_indexes=1),
            "squares_0_2": ti.xcom_pull(task_ids="fan", key="square", map_indexes=[0, 2]),
            "squares": ti.xcom_pull(task_ids="fan", key="square"),
            "returns": ti.xcom_pull(task_ids=["push_sync", "fan"]),
            "classic": ti.xcom_pull(task_ids="pusher", key="classic"),
            "quiet": ti.xcom_pull(task_ids="quiet", default="none"),
            "kept": ti.xcom_pull(task_ids="quiet", key="kept"),
            "split_a": ti.xcom_pull(task_ids="split", key="a"),
            "missing": ti.xcom_pull(task_ids="split", key="nope", default="dflt"),
            "a": a,
            "b": b,
            "refused": refused,
        }

    parts = split()
    templated_pull = Rendered(
        task_id="templated_pull",
        sql="{{ ti.xcom_pull(task_ids='push_sync', key='sync_key') | join('-') }}",
        options={
            "square": "{{ ti.xcom_pull(task_ids='fan', key='square', map_indexes=2) }}",
            "nested": [parts["b"], {"a": parts["a"]}],
        },
    )

    @task
    def mapped_pull(x: int, ti: Any) -> list[Any]:
        return [
            ti.xcom_pull(task_ids="push_sync", key="sync_key"),
            ti.xcom_pull(task_ids="fan", key="square", map_indexes=x),
        ]

    lonely()
    hop = middle()
    hop >> mapped_pull.expand(x=[0, 2])
    [push_sync(), push_async(), fan.expand(x=[1, 2, 3]), Pusher(task_id="pusher"), quiet()] >> hop
    hop >> [pull_all(a=parts["a"], b=parts["b"]), templated_pull]


# -- mapped task groups (ADR 0029): per-index instances on every executor ------------


def as_order(n: int) -> dict[str, int]:
    """A .map() function over a mapped group's source (runs in the worker)."""
    return {"qty": n, "price": 10 * n}


with DAG("mapped_groups") as mapped_groups:

    @task
    def counts() -> list[int]:
        return [1, 2, 3]

    @task
    def priced(order: dict[str, int], ti: Any = None) -> int:
        if order["qty"] == 2:
            raise ValueError("no stock for 2")
        return order["qty"] * order["price"]

    @task
    async def taxed(amount: int, rate: int, ti: Any = None) -> Any:
        return {
            "total": amount + amount * rate // 100,
            "map_index": ti.map_index,
            "pulled": ti.xcom_pull(task_ids="orders.priced"),
        }

    @task(trigger_rule="all_done")
    def summary(values: list[Any]) -> Any:
        return [v["total"] for v in values]

    @task
    def strict(values: list[Any]) -> None:
        raise AssertionError("never runs: one instance of the group failed")

    @task_group
    def orders(order: dict[str, int], rate: int) -> Any:
        return taxed(priced(order), rate)

    @task
    def label(name: str, first: str) -> str:
        return f"{first}:{name}"

    @task_group
    def labels(pair: dict[str, str]) -> Any:
        # A classic operator made inside a mapped group is mapped with it too.
        greet = Greet(task_id="greet", name=pair["name"], greeting="hi")
        return greet >> label(pair["name"], pair["first"])

    out = orders.partial(rate=10).expand(order=counts().map(as_order))
    summary(out)
    strict(out)
    labels.expand(pair=[{"name": "ann", "first": "a"}, {"name": "bob", "first": "b"}])
