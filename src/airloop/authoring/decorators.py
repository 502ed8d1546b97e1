"""``@task``: turn a function (``def`` or ``async def``) into a task."""

from __future__ import annotations

import copy
import functools
import inspect
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, overload

from airloop.authoring.airflow_args import (
    TASK_ARGS,
    TASK_DISPLAY_ARGS,
    split_task_args,
    unknown_argument,
)
from airloop.authoring.context import CONTEXT_KEYS, Context
from airloop.authoring.expand_input import reject_in_plain_arguments
from airloop.authoring.mapped import MappedOperator, OperatorPartial
from airloop.authoring.operator import (
    NOTSET,
    SETTING_NAMES,
    AbstractOperator,
    BaseOperator,
    with_xcoms,
)
from airloop.authoring.templating import has_template_strings
from airloop.authoring.xcom import XComSnapshot, capture_xcoms, infer_multiple_outputs
from airloop.authoring.xcom_arg import (
    OutputLookup,
    XComArg,
    iter_xcom_args,
    resolve_xcom_args,
)
from airloop.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from airloop.authoring.taskgroup import MappedTaskGroup


class _Signature:
    """What a task function accepts, worked out once per function."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.name = getattr(fn, "__qualname__", repr(fn))
        self.signature = inspect.signature(fn)
        params = self.signature.parameters.values()
        self.var_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
        self.names = {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        self.context_names = self.names & CONTEXT_KEYS
        #: The function may call ti.xcom_pull: its upstream outputs travel with it.
        self.may_pull = self.var_keyword or bool(self.context_names & {"ti", "task_instance"})
        self.is_coroutine = inspect.iscoroutinefunction(fn)
        # Weakly: this object is cached in a WeakKeyDictionary keyed by ``fn``.
        try:
            self._fn: Callable[[], Callable[..., Any] | None] = weakref.ref(fn)
        except TypeError:  # not weak-referenceable (and so never cached)
            self._fn = lambda: fn

    @functools.cached_property
    def multiple_outputs(self) -> bool:
        """Airflow's inference from the return annotation, made once per function (on
        first use, so an annotation naming something defined later still resolves)."""
        fn = self._fn()
        return fn is not None and infer_multiple_outputs(fn)

    def check_call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        try:
            bound = self.signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise DagDefinitionError(f"{self.name}(): {exc}") from None
        for param in self.signature.parameters.values():
            if (
                param.name not in bound.arguments
                and param.default is param.empty
                and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
                and param.name not in CONTEXT_KEYS
            ):
                raise DagDefinitionError(f"{self.name}(): missing argument {param.name!r}")

    def check_names(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.names and not self.var_keyword:
                raise DagDefinitionError(f"{self.name}() has no parameter {name!r}")


@dataclass(frozen=True, slots=True)
class _WithOutputs:
    """What ``bind`` returns for a function that may call ti.xcom_pull."""

    arguments: tuple[tuple[Any, ...], dict[str, Any]] | None
    xcoms: XComSnapshot


class PythonTaskOperator(BaseOperator):
    """Runs a Python callable; what ``@task`` creates."""

    own_xcom_arg_fields: ClassVar[frozenset[str]] = frozenset(
        {"op_args", "op_kwargs", "argument_templates"}
    )

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Iterable[Any] = (),
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args = tuple(op_args)
        self.op_kwargs = dict(op_kwargs or {})
        self._sig = _signature(python_callable)
        reject_in_plain_arguments(f"task {self.task_id!r}", (self.op_args, self.op_kwargs))
        self._deps = _unique(a.operator for a in iter_xcom_args((self.op_args, self.op_kwargs)))
        for dep in self._deps:
            dep.set_downstream(self)
        if has_template_strings((self.op_args, self.op_kwargs)):
            # Rendered in the worker before the call, as Airflow renders op_args/op_kwargs.
            self.argument_templates = (self.op_args, self.op_kwargs)

    @property
    def is_async(self) -> bool:
        return self._sig.is_coroutine

    def xcom_dependencies(self) -> list[AbstractOperator]:
        return list(self._deps)

    def bind(self, map_index: int, lookup: OutputLookup) -> Any:
        xcoms = capture_xcoms(self, lookup) if self._sig.may_pull else None
        # Without XComArgs the arguments are in the DAG file already.
        args = (
            (resolve_xcom_args(self.op_args, lookup), resolve_xcom_args(self.op_kwargs, lookup))
            if self._deps
            else None
        )
        if xcoms is not None:
            return _WithOutputs(args, xcoms)
        return args

    def rebuild(self, bound: Any) -> BaseOperator:
        if bound is None:
            return self
        xcoms = None
        if isinstance(bound, _WithOutputs):
            bound, xcoms = bound.arguments, bound.xcoms
        op = copy.copy(self)
        if bound is not None:
            op.op_args, op.op_kwargs = bound
        return with_xcoms(op, xcoms)

    def execute(self, context: Context) -> Any:
        """Call the function (for an ``async def`` this returns the coroutine to await)."""
        kwargs = dict(self.op_kwargs)
        sig = self._sig
        if sig.context_names or sig.var_keyword:
            if self.op_args:
                bound = sig.signature.bind_partial(*self.op_args, **kwargs).arguments.keys()
            else:
                bound = kwargs.keys()
            # **context gets the keys this run has (a run without a logical date has no ds).
            wanted = set(context) if sig.var_keyword else sig.context_names
            for name in wanted - bound:
                if name not in context:
                    raise TypeError(
                        f"task {self.task_id!r}: parameter {name!r} needs the run's logical "
                        "date, and this run has none (give the run a logical_date)"
                    )
                kwargs[name] = context[name]
        return self.python_callable(*self.op_args, **kwargs)


def _unique(ops: Iterable[AbstractOperator]) -> list[AbstractOperator]:
    return list({id(op): op for op in ops}.values())


# Weak: when a DAG file is re-parsed, its old functions (and their module) can go.
_signatures: weakref.WeakKeyDictionary[Callable[..., Any], _Signature] = weakref.WeakKeyDictionary()


def _signature(fn: Callable[..., Any]) -> _Signature:
    try:
        sig = _signatures.get(fn)
    except TypeError:  # not weak-referenceable (a builtin): no cache
        return _Signature(fn)
    if sig is None:
        sig = _signatures[fn] = _Signature(fn)
    return sig


class _FunctionFactory:
    """Builds the PythonTaskOperator of one map index of a mapped ``@task``.

    The operator is built and validated once; each map index gets a shallow copy with
    its own (already resolved) arguments, which matters at 10,000 instances.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "task")
        self.operator_name = PythonTaskOperator.__name__
        self._prototypes: dict[str, PythonTaskOperator] = {}
        #: ``partial()`` arguments as written, when one of them is a template.
        self.argument_templates: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    @property
    def may_pull(self) -> bool:
        return _signature(self.fn).may_pull

    def check_names(self, names: Iterable[str]) -> None:
        _signature(self.fn).check_names(names)

    def own_names(self) -> frozenset[str]:
        return frozenset(_signature(self.fn).names)

    @property
    def is_async(self) -> bool:
        return _signature(self.fn).is_coroutine

    def unknown_name(self, names: Iterable[str]) -> str | None:
        sig = _signature(self.fn)
        if sig.var_keyword:
            return None
        return next((n for n in names if n not in sig.names), None)

    def __call__(self, task_id: str, kwargs: dict[str, Any]) -> BaseOperator:
        proto = self._prototypes.get(task_id)
        if proto is None:
            from airloop.authoring.dag import detached

            with detached():
                proto = PythonTaskOperator(task_id=task_id, python_callable=self.fn)
            self._prototypes[task_id] = proto
        op = copy.copy(proto)
        op.op_kwargs = kwargs
        op.argument_templates = self.argument_templates
        return op


_DECORATOR_NAMES = SETTING_NAMES | {"task_id", "doc", "task_group", "params"}
#: Airflow operator arguments: in ``.partial()`` they are settings, not function arguments.
_AIRFLOW_NAMES = frozenset(TASK_ARGS) | TASK_DISPLAY_ARGS


class TaskDecorator:
    """A function made into a task. Call it inside a DAG to add a task instance of it."""

    #: The operator a call creates (``@task.branch`` and others use their own).
    operator_class: type[PythonTaskOperator] = PythonTaskOperator
    #: Arguments of ``operator_class`` beyond the common ones, accepted as settings.
    extra_settings: frozenset[str] = frozenset()

    def __init__(self, fn: Callable[..., Any], settings: Mapping[str, Any]) -> None:
        if not callable(fn):
            raise DagDefinitionError(f"@task needs a function, got {fn!r}")
        where = f"@task {getattr(fn, '__name__', fn)!r}"
        _, rest = split_task_args(where, settings)
        unknown = sorted(set(rest) - _DECORATOR_NAMES - self.extra_settings)
        if unknown:
            known = _DECORATOR_NAMES | set(TASK_ARGS) | TASK_DISPLAY_ARGS
            raise unknown_argument(where, unknown[0], known)
        self.function = fn
        self.settings = dict(settings)
        functools.update_wrapper(self, fn)

    def _task_id(self) -> str:
        """The id for a new call, unique in its group (before the group's prefix)."""
        from airloop.authoring.dag import current_dag
        from airloop.authoring.taskgroup import group_for

        base = self.settings.get("task_id") or self.function.__name__
        dag = current_dag()
        if dag is None:
            return str(base)
        where = f"@task {self.function.__name__!r}"
        return dag.unique_task_id(base, group_for(dag, self.settings.get("task_group"), where))

    def _check_context(self) -> None:
        from airloop.authoring.dag import current_dag

        if current_dag() is None:
            raise DagDefinitionError(
                f"{self.function.__name__}() was called outside a DAG: "
                "call tasks inside 'with DAG(...):'"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        self._check_context()
        _signature(self.function).check_call(args, kwargs)
        group = self._mapped_group()
        if group is not None:
            return self._in_mapped_group(group, args, kwargs)
        settings = self._settings()
        op = self.operator_class(
            task_id=self._task_id(),
            python_callable=self.function,
            op_args=args,
            op_kwargs=kwargs,
            **settings,
        )
        return XComArg(op)

    def _mapped_group(self) -> MappedTaskGroup | None:
        """The mapped task group a call now would make its task in (None: not mapped)."""
        from airloop.authoring.dag import current_dag
        from airloop.authoring.taskgroup import group_for

        where = f"@task {self.function.__name__!r}"
        group = group_for(current_dag(), self.settings.get("task_group"), where)
        return None if group is None else group.mapping

    def _in_mapped_group(
        self, group: MappedTaskGroup, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> XComArg:
        """A call inside a mapped task group: a task mapped over the group's expansion."""
        name = self.function.__name__
        if self.operator_class is not PythonTaskOperator:
            raise DagDefinitionError(
                f"@task {name!r}: a {self.operator_class.__name__} cannot be made inside the "
                f"mapped task group {group.group_id!r} yet (only plain @task functions)"
            )
        sig = _signature(self.function)
        bound = sig.signature.bind_partial(*args, **kwargs).arguments
        arguments: dict[str, Any] = {}
        for param_name, value in bound.items():
            kind = sig.signature.parameters[param_name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise DagDefinitionError(
                        f"{name}(): inside the mapped task group {group.group_id!r} pass "
                        f"arguments by name (*{param_name} cannot be mapped)"
                    )
            elif kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            else:
                arguments[param_name] = value
        for key in arguments:
            if key in SETTING_NAMES or key in ("task_id", "dag", "doc", "task_group"):
                raise DagDefinitionError(
                    f"{name}(): argument {key!r} inside the mapped task group "
                    f"{group.group_id!r} would be read as a task setting; rename the parameter"
                )
        return _TaskPartial(self, arguments)._mapped({}, NOTSET, group)

    def _settings(self) -> dict[str, Any]:
        """The task settings, ``multiple_outputs`` inferred from a dict return annotation
        unless given (as Airflow)."""
        settings = {k: v for k, v in self.settings.items() if k != "task_id"}
        if "multiple_outputs" not in settings and _signature(self.function).multiple_outputs:
            settings["multiple_outputs"] = True
        return settings

    def override(self, **settings: Any) -> TaskDecorator:
        return type(self)(self.function, {**self.settings, **settings})

    def partial(self, **kwargs: Any) -> _TaskPartial:
        return _TaskPartial(self, kwargs)

    def expand(self, **mapped: Any) -> XComArg:
        return self.partial().expand(**mapped)

    def expand_kwargs(self, source: Any, /) -> XComArg:
        return self.partial().expand_kwargs(source)


class _TaskPartial:
    def __init__(self, decorator: TaskDecorator, kwargs: Mapping[str, Any]) -> None:
        self.decorator = decorator
        self.kwargs = dict(kwargs)

    def expand(self, **mapped: Any) -> XComArg:
        return self._mapped(mapped, NOTSET)

    def expand_kwargs(self, source: Any, /) -> XComArg:
        """One instance per dict of ``source``: a list of dicts, or a task's output."""
        return self._mapped({}, source)

    def _mapped(
        self, mapped: dict[str, Any], kwargs_source: Any, group: MappedTaskGroup | None = None
    ) -> XComArg:
        deco = self.decorator
        deco._check_context()
        sig = _signature(deco.function)

        def is_setting(name: str) -> bool:
            if name == "task_group" and name not in sig.names:
                return True
            return name in SETTING_NAMES or (name in _AIRFLOW_NAMES and name not in sig.names)

        fn_kwargs = {k: v for k, v in self.kwargs.items() if not is_setting(k)}
        sig.check_names([*fn_kwargs, *mapped])
        settings = deco._settings()
        settings.update({k: v for k, v in self.kwargs.items() if is_setting(k)})
        factory = _FunctionFactory(deco.function)
        if has_template_strings(fn_kwargs):
            factory.argument_templates = ((), fn_kwargs)
        partial = OperatorPartial(
            factory,
            {"task_id": deco._task_id(), **settings, **fn_kwargs},
        )
        op: MappedOperator = (
            partial.in_group(group)
            if group is not None
            else partial.expand(**mapped)
            if kwargs_source is NOTSET
            else partial.expand_kwargs(kwargs_source)
        )
        return XComArg(op)


#: What ``task.branch`` and ``task.short_circuit`` are: ``@x`` or ``@x(**settings)``.
BranchFactory = Callable[..., Any]


class _TaskDecoratorCollection:
    """``task``: ``@task`` / ``@task(...)``, with Airflow's variants as attributes
    (``@task.branch``, ``@task.short_circuit``: see branch.py)."""

    @overload
    def __call__(self, python_callable: Callable[..., Any], /) -> TaskDecorator: ...

    @overload
    def __call__(
        self, python_callable: None = None, /, **settings: Any
    ) -> Callable[[Callable[..., Any]], TaskDecorator]: ...

    def __call__(
        self, python_callable: Callable[..., Any] | None = None, /, **settings: Any
    ) -> TaskDecorator | Callable[[Callable[..., Any]], TaskDecorator]:
        """``@task`` or ``@task(retries=2, pool="db", ...)`` on a ``def`` or ``async def``."""
        if python_callable is not None:
            return TaskDecorator(python_callable, settings)

        def wrap(fn: Callable[..., Any]) -> TaskDecorator:
            return TaskDecorator(fn, settings)

        return wrap

    @property
    def branch(self) -> BranchFactory:
        from airloop.authoring.branch import branch_task

        return branch_task

    @property
    def short_circuit(self) -> BranchFactory:
        from airloop.authoring.branch import short_circuit_task

        return short_circuit_task

    @property
    def bash(self) -> BranchFactory:
        """``@task.bash``: the function returns the bash command to run (see
        airloop.operators.bash). Provided by a higher layer, as Airflow's providers
        add ``task.<name>`` decorators: imported by name when first used (ADR 0033)."""
        return _provided("bash")


#: ``task.<name>`` decorators that a higher layer provides: "module:attribute".
_PROVIDED_DECORATORS = {"bash": "airloop.operators.bash:bash_task"}


def _provided(name: str) -> BranchFactory:
    import importlib

    module, _, attribute = _PROVIDED_DECORATORS[name].partition(":")
    found: BranchFactory = getattr(importlib.import_module(module), attribute)
    return found


task = _TaskDecoratorCollection()
