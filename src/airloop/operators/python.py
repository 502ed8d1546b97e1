"""``PythonOperator`` and ``EmptyOperator`` (Airflow's names and arguments).

``PythonOperator`` is ``@task``'s operator (``PythonTaskOperator``) under Airflow's
classic name, with ``templates_dict``: the arguments, their templates, XComArgs in
them and context injection by parameter name are the ones ``@task`` has.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airloop.authoring.decorators import PythonTaskOperator
from airloop.authoring.operator import BaseOperator
from airloop.authoring.xcom_arg import iter_xcom_args
from airloop.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from airloop.authoring.context import Context


class PythonOperator(PythonTaskOperator):
    """Airflow's ``PythonOperator``: calls ``python_callable(*op_args, **op_kwargs)``.

    The callable gets context values by parameter name (``ds``, ``ti``, ``params``...)
    or all of them with ``**kwargs``, as ``@task`` functions do, and the rendered
    ``templates_dict`` as a parameter named ``templates_dict``. Strings in ``op_args``
    / ``op_kwargs`` are templates (rendered in the worker), as in Airflow. A ``def``
    runs in the executor's thread pool, an ``async def`` on the loop.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("templates_dict",)
    template_fields_renderers: ClassVar[Mapping[str, str]] = {"templates_dict": "json"}

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
                f"task {task_id!r}: python_callable must be callable, got {python_callable!r}"
            )
        if templates_dict is not None and not isinstance(templates_dict, Mapping):
            raise DagDefinitionError(
                f"task {task_id!r}: templates_dict must be a dict, got "
                f"{type(templates_dict).__name__}"
            )
        if any(True for _ in iter_xcom_args(templates_dict)):
            raise DagDefinitionError(
                f"task {task_id!r}: templates_dict cannot hold task outputs; pass them in "
                "op_args / op_kwargs (or pull them in a template)"
            )
        super().__init__(
            python_callable=python_callable,
            op_args=op_args or (),
            op_kwargs=op_kwargs,
            **kwargs,
        )
        self.templates_dict = dict(templates_dict) if templates_dict is not None else None
        sig = self._sig
        self._takes_templates_dict = "templates_dict" in sig.names or sig.var_keyword

    def execute(self, context: Context) -> Any:
        if self._takes_templates_dict and "templates_dict" not in self.op_kwargs:
            # As Airflow: the rendered templates_dict goes to a parameter of that name.
            op = copy.copy(self)
            op.op_kwargs = {**self.op_kwargs, "templates_dict": self.templates_dict}
            return PythonTaskOperator.execute(op, context)
        return super().execute(context)


class EmptyOperator(BaseOperator):
    """Airflow's ``EmptyOperator``: does nothing (a join, a placeholder). Here it is
    scheduled and run like any task (on the loop, no thread), and succeeds at once."""

    async def execute(self, context: Context) -> None:
        return None
