"""``BashSensor``: a bash command poked until it exits 0."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airloop.authoring.sensor import BaseSensor
from airloop.exceptions import DagDefinitionError, FailTask, SkipTask
from airloop.hooks.subprocess import SubprocessHook, command_env

if TYPE_CHECKING:
    from airloop.authoring.context import Context


class BashSensor(BaseSensor):
    """Airflow's ``BashSensor``: each poke runs ``bash -c bash_command`` (in its own
    process group, output lines to the task log); exit code 0 ends the wait.

    A non-zero code means "not yet"; with ``retry_exit_code`` set, only that code
    means "not yet" and any other fails the task without retry, or skips it with
    ``soft_fail`` (as Airflow). ``env``
    (templated) replaces the environment, as BashOperator's without ``append_env``.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("bash_command", "env")
    template_ext: ClassVar[tuple[str, ...]] = (".sh", ".bash")

    def __init__(
        self,
        *,
        bash_command: str,
        env: Mapping[str, str] | None = None,
        output_encoding: str = "utf-8",
        retry_exit_code: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if retry_exit_code is not None and (
            not isinstance(retry_exit_code, int) or isinstance(retry_exit_code, bool)
        ):
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: retry_exit_code must be an int or None, "
                f"got {retry_exit_code!r}"
            )
        self.bash_command = bash_command
        self.env = env
        self.output_encoding = output_encoding
        self.retry_exit_code = retry_exit_code

    async def poke(self, context: Context) -> bool:  # type: ignore[override]
        where = f"sensor {self.task_id!r}"
        if not isinstance(self.bash_command, str) or not self.bash_command.strip():
            raise TypeError(f"{where}: bash_command must be a non-empty string")
        log = context.log
        log.info("poking with bash command: %s", self.bash_command)
        result = await SubprocessHook().run_command(
            ["bash", "-c", self.bash_command],
            env=command_env(where, self.env, False, context),
            output_encoding=self.output_encoding,
            on_line=lambda line: log.info("%s", line),
        )
        code = result.exit_code
        if code == 0:
            return True
        if self.retry_exit_code is not None and code != self.retry_exit_code:
            message = (
                f"{where}: bash command exited with code {code} "
                f"(retry_exit_code is {self.retry_exit_code})"
            )
            if self.soft_fail:  # Airflow's sensors skip on such a failure with soft_fail
                raise SkipTask(message + " (soft_fail)")
            raise FailTask(message)
        log.info("exit code %s: poking again later", code)
        return False
