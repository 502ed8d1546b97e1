"""``PythonSensor``: a Python callable poked until it returns something truthy."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airloop.authoring.decorators import PythonTaskOperator
from airloop.authoring.sensor import BaseSensor, PokeReturnValue
from airloop.authoring.xcom_arg import iter_xcom_args
from airloop.exceptions import DagDefinitionError
from airloop.runtime import run_sync

if TYPE_CHECKING:
    from airloop.authoring.context import Context


class PythonSensor(BaseSensor, PythonTaskOperator):
    """Airflow's ``PythonSensor``: each poke calls ``python_callable(*op_args,
    **op_kwargs)``; a truthy result (or ``PokeReturnValue(True, xcom_value)``) ends the
    wait. Arguments, context injection by parameter name and ``templates_dict`` work
    as for ``PythonOperator``. A ``def`` callable runs in the thread pool, an ``async
    def`` on the loop; between pokes nothing is held.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("templates_dict",)

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Iterable[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        task_id = kwargs.get("task_id")
        if not callable(python_callable):
            raise DagDefinitionError(
                f"sensor {task_id!r}: python_callable must be callable, got {python_callable!r}"
            )
        if templates_dict is not None and not isinstance(templates_dict, Mapping):
            raise DagDefinitionError(f"sensor {task_id!r}: templates_dict must be a dict")
        if any(True for _ in iter_xcom_args(templates_dict)):
            raise DagDefinitionError(
                f"sensor {task_id!r}: templates_dict cannot hold task outputs; pass them "
                "in op_args / op_kwargs"
            )
        super().__init__(
            python_callable=python_callable, op_args=op_args or (), op_kwargs=op_kwargs, **kwargs
        )
        self.templates_dict = dict(templates_dict) if templates_dict is not None else None
        self._takes_templates_dict = "templates_dict" in self._sig.names or self._sig.var_keyword

    @property
    def is_async(self) -> bool:
        return True  # BaseSensor.execute: a coroutine whatever the callable is

    def _call(self, context: Context) -> Any:
        op: PythonTaskOperator = self
        if self._takes_templates_dict and "templates_dict" not in self.op_kwargs:
            op = copy.copy(self)
            op.op_kwargs = {**self.op_kwargs, "templates_dict": self.templates_dict}
        return PythonTaskOperator.execute(op, context)

    async def poke(self, context: Context) -> bool | PokeReturnValue:  # type: ignore[override]
        if self._sig.is_coroutine:
            result = await self._call(context)
        else:
            result = await run_sync(self._call, context)
        if isinstance(result, PokeReturnValue):
            return result
        return bool(result)
