"""``BashOperator`` and ``@task.bash``: a bash command as a coroutine.

``bash -c COMMAND`` runs in a process group of its own (``SubprocessHook``); while it
runs the task awaits it, holding no thread, whichever executor runs it. Its output
lines reach the task's log as they come; the last one is the XCom. Exit code 0 is a
success, ``skip_on_exit_code`` (99) a skip, anything else a failure naming the code.
A timeout or a cancellation terminates the whole group (ADR 0033).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airloop.authoring.decorators import PythonTaskOperator, TaskDecorator
from airloop.authoring.operator import BaseOperator
from airloop.authoring.templating import render_object
from airloop.authoring.xcom_arg import iter_xcom_args
from airloop.exceptions import AirloopError, DagDefinitionError, SkipTask
from airloop.hooks.subprocess import SubprocessHook, command_env
from airloop.runtime import run_sync

if TYPE_CHECKING:
    from airloop.authoring.context import Context


class BashCommandError(AirloopError):
    """The command exited with a code that is neither 0 nor a skip code."""


def _skip_codes(where: str, value: object) -> frozenset[int]:
    if value is None:
        return frozenset()
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
        raise DagDefinitionError(
            f"{where}: skip_on_exit_code must be an int, a list of ints or None, got {value!r}"
        )
    codes = list(items)
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
        raise DagDefinitionError(
            f"{where}: skip_on_exit_code must be an int, a list of ints or None, got {value!r}"
        )
    return frozenset(codes)


class _BashOptions:
    """What BashOperator and ``@task.bash`` share: the options and the run itself."""

    task_id: str
    env: Mapping[str, str] | None
    cwd: str | None
    append_env: bool
    output_encoding: str
    skip_on_exit_code: frozenset[int]
    output_processor: Callable[[str], Any]

    def _set_bash_options(
        self,
        *,
        env: Mapping[str, str] | None,
        append_env: bool,
        output_encoding: str,
        skip_on_exit_code: int | Iterable[int] | None,
        cwd: str | None,
        output_processor: Callable[[str], Any] | None,
    ) -> None:
        where = f"task {self.task_id!r}"
        if output_processor is not None and not callable(output_processor):
            raise DagDefinitionError(f"{where}: output_processor must be callable")
        try:
            "".encode(output_encoding)
        except (LookupError, TypeError):
            raise DagDefinitionError(
                f"{where}: unknown output_encoding {output_encoding!r}"
            ) from None
        self.env = env
        self.append_env = bool(append_env)
        self.output_encoding = output_encoding
        self.skip_on_exit_code = _skip_codes(where, skip_on_exit_code)
        self.cwd = cwd
        self.output_processor = output_processor or _identity

    async def _run_bash(self, command: object, context: Context) -> Any:
        where = f"task {self.task_id!r}"
        if not isinstance(command, str) or not command.strip():
            raise TypeError(
                f"{where}: the bash command must be a non-empty string, got {command!r}"
            )
        if self.cwd is not None and not isinstance(self.cwd, str):
            raise TypeError(f"{where}: cwd must be a string, got {self.cwd!r}")
        env = command_env(where, self.env, self.append_env, context)
        log = context.log
        log.info("running bash command: %s", command)
        hook = SubprocessHook()
        result = await hook.run_command(
            ["bash", "-c", command],
            env=env,
            output_encoding=self.output_encoding,
            cwd=self.cwd,
            on_line=lambda line: log.info("%s", line),
        )
        code = result.exit_code
        if code in self.skip_on_exit_code:
            raise SkipTask(f"bash command exited with code {code} (skip_on_exit_code)")
        if code != 0:
            what = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            raise BashCommandError(f"bash command failed: {what}")
        return self.output_processor(result.output)


def _identity(output: str) -> Any:
    return output


class BashOperator(_BashOptions, BaseOperator):
    """Airflow's ``BashOperator``: runs ``bash -c bash_command``.

    ``bash_command`` (templated; a name ending in ``.sh`` / ``.bash`` is a template file
    found through the DAG's ``template_searchpath``, as in Airflow), ``env`` (templated;
    replaces the environment unless ``append_env``), ``cwd`` (templated; default a
    fresh temporary folder in Airflow, here the worker's working directory),
    ``output_encoding``, ``skip_on_exit_code`` (99; an int, a list or None),
    ``output_processor`` (applied to the last output line before it is the XCom).
    """

    template_fields: ClassVar[tuple[str, ...]] = ("bash_command", "env", "cwd")
    template_ext: ClassVar[tuple[str, ...]] = (".sh", ".bash")
    template_fields_renderers: ClassVar[Mapping[str, str]] = {
        "bash_command": "bash",
        "env": "json",
    }

    def __init__(
        self,
        *,
        bash_command: str,
        env: Mapping[str, str] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | Iterable[int] | None = 99,
        cwd: str | None = None,
        output_processor: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self._set_bash_options(
            env=env,
            append_env=append_env,
            output_encoding=output_encoding,
            skip_on_exit_code=skip_on_exit_code,
            cwd=cwd,
            output_processor=output_processor,
        )

    async def execute(self, context: Context) -> Any:
        return await self._run_bash(self.bash_command, context)


class _BashCommand:
    """The command a ``@task.bash`` function returned, rendered as a template."""

    template_fields = ("bash_command",)

    def __init__(self, bash_command: str) -> None:
        self.bash_command = bash_command


def _command_of(op: PythonTaskOperator, context: Context) -> Any:
    """Call the function and render what it returned (user code: off the loop)."""
    command = PythonTaskOperator.execute(op, context)
    if not isinstance(command, str) or not command.strip():
        raise TypeError(
            f"task {op.task_id!r}: a @task.bash function must return the command, a "
            f"non-empty string; it returned {command!r}"
        )
    return render_object(_BashCommand(command), context).bash_command


class BashDecoratedOperator(_BashOptions, PythonTaskOperator):
    """What ``@task.bash`` creates: the function's return value is the command."""

    template_fields: ClassVar[tuple[str, ...]] = ("env", "cwd")

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | Iterable[int] | None = 99,
        cwd: str | None = None,
        output_processor: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"@task.bash {self.task_id!r}"
        _check_plain_def(where, self.python_callable)
        if any(True for _ in iter_xcom_args((env, cwd))):
            raise DagDefinitionError(
                f"{where}: env and cwd cannot hold task outputs here; pass them to the "
                "function as arguments and build the command from them"
            )
        self._set_bash_options(
            env=env,
            append_env=append_env,
            output_encoding=output_encoding,
            skip_on_exit_code=skip_on_exit_code,
            cwd=cwd,
            output_processor=output_processor,
        )

    @property
    def is_async(self) -> bool:
        return True

    async def execute(self, context: Context) -> Any:
        command = await run_sync(_command_of, self, context)
        return await self._run_bash(command, context)


def _check_plain_def(where: str, fn: Callable[..., Any]) -> None:
    if inspect.iscoroutinefunction(fn):
        raise DagDefinitionError(
            f"{where}: the function must be a plain def returning the command (not async)"
        )


class BashDecorator(TaskDecorator):
    operator_class = BashDecoratedOperator
    extra_settings = frozenset(
        {"env", "append_env", "output_encoding", "skip_on_exit_code", "cwd", "output_processor"}
    )

    def __init__(self, fn: Callable[..., Any], settings: Mapping[str, Any]) -> None:
        _check_plain_def(f"@task.bash {getattr(fn, '__name__', fn)!r}", fn)
        super().__init__(fn, settings)

    def partial(self, **kwargs: Any) -> Any:
        raise DagDefinitionError(
            f"@task.bash {self.function.__name__!r}: mapping (.partial/.expand) is not "
            "supported yet; map a BashOperator (BashOperator.partial(...).expand(...))"
        )

    def expand(self, **mapped: Any) -> Any:
        return self.partial()

    def expand_kwargs(self, source: Any, /) -> Any:
        return self.partial()


def bash_task(python_callable: Callable[..., Any] | None = None, /, **settings: Any) -> Any:
    """``@task.bash`` / ``@task.bash(env=..., cwd=..., skip_on_exit_code=...)``."""
    if python_callable is not None:
        return BashDecorator(python_callable, settings)
    return lambda fn: BashDecorator(fn, settings)
