"""``@dag``: a function that builds a DAG when called (Airflow's decorator).

::

    @dag(schedule="@daily", start_date=..., default_args={"retries": 2})
    def etl(source: str = "db", limit: int = 100):
        '''Loads the day's rows.'''          # the DAG's doc_md
        load(extract(source, limit))

    etl()                                   # builds DAG "etl", params source and limit

The DAG id defaults to the function's name, the docstring is the ``doc_md`` when none
is given, and the function's parameters become the DAG's ``params`` with their
defaults (arguments given to the call replace them). The function runs inside the
DAG's ``with`` block and returns nothing.

Difference from Airflow: the function's arguments are the parameters' values when the
DAG is built (Airflow passes references resolved when the task runs). A task that
must see a triggered run's value reads ``params["name"]`` (or ``{{ params.name }}``).
"""

from __future__ import annotations

import copy
import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, overload

from airloop.authoring.dag import DAG
from airloop.authoring.params import Param
from airloop.exceptions import DagDefinitionError


class DagFactory:
    """What ``@dag`` makes of a function: call it to build the DAG."""

    def __init__(self, fn: Callable[..., Any], dag_id: str | None, kwargs: dict[str, Any]) -> None:
        if not callable(fn):
            raise DagDefinitionError(f"@dag needs a function, got {fn!r}")
        self.function = fn
        self.dag_id = dag_id
        self.kwargs = kwargs
        self._signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> DAG:
        name = getattr(self.function, "__name__", "dag")
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise DagDefinitionError(f"@dag {name!r}: {exc}") from None
        bound.apply_defaults()
        options = dict(self.kwargs)
        params: dict[str, Any] = dict(options.pop("params", None) or {})
        call_args: dict[str, Any] = {}
        for param_name, value in bound.arguments.items():
            kind = self._signature.parameters[param_name].kind
            if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise DagDefinitionError(
                    f"@dag {name!r}: *args and **kwargs cannot become DAG params; "
                    "name each parameter"
                )
            params[param_name] = _merge_param(params.get(param_name), value)
            call_args[param_name] = value.default if isinstance(value, Param) else value
        if self.function.__doc__ and options.get("doc_md") is None and options.get("doc") is None:
            options["doc_md"] = inspect.cleandoc(self.function.__doc__)
        dag_id = options.pop("dag_id", None) or self.dag_id or name
        with DAG(dag_id, params=params, **options) as built:
            # Where the DAG is built: the file that calls the decorated function.
            caller = sys._getframe(1)
            built.fileloc = caller.f_code.co_filename
            built.lineno = caller.f_lineno
            returned = self.function(**call_args)
        if returned is not None:
            raise DagDefinitionError(
                f"@dag {name!r} returned {type(returned).__name__} {returned!r}: a @dag "
                "function creates tasks and returns nothing"
            )
        return built


def _merge_param(declared: Any, value: Any) -> Any:
    """A function default over a Param of the same name given in ``params=``: the
    Param's schema with the function's default."""
    if isinstance(value, Param) or not isinstance(declared, Param):
        return value
    merged = copy.copy(declared)
    merged.default = value
    return merged


@overload
def dag(fn: Callable[..., Any], /) -> DagFactory: ...


@overload
def dag(
    dag_id: str | None = None, /, **kwargs: Any
) -> Callable[[Callable[..., Any]], DagFactory]: ...


def dag(
    fn_or_id: Callable[..., Any] | str | None = None, /, **kwargs: Any
) -> DagFactory | Callable[[Callable[..., Any]], DagFactory]:
    """``@dag``, ``@dag(...)`` or ``@dag("dag_id", ...)`` with ``DAG``'s arguments."""
    if callable(fn_or_id):
        return DagFactory(fn_or_id, None, kwargs)

    def wrap(fn: Callable[..., Any]) -> DagFactory:
        return DagFactory(fn, fn_or_id, kwargs)

    return wrap
