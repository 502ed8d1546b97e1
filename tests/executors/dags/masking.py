"""DAGs for the secret-masking tests (tests/executors/test_masking.py). A real file:
process and Dask workers load tasks from it by reference."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from airloop import DAG, BaseOperator, Context, mask_secret, task

#: Registered by the task itself, in whichever process runs it.
SECRET = "s3cr3t-value"
#: Registered by the test, in the scheduler's process only: workers learn it from there.
PARENT_SECRET = "parent-only-s3cr3t"

log = logging.getLogger("masking.dag")


def register(value: str) -> str:
    """A macro: the secret is registered while the template renders (in the worker)."""
    mask_secret(value)
    return value


class Leaky(BaseOperator):
    """Renders the secret into its fields, prints it, logs it and fails with it."""

    template_fields: ClassVar[tuple[str, ...]] = ("command", "env", "pin_code")

    def __init__(self, *, command: str, env: dict[str, Any], pin_code: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.command = command
        self.env = env
        #: Sensitive only through the sensitive_var_conn_names setting.
        self.pin_code = pin_code

    def execute(self, context: Context) -> None:
        print(f"printed: {self.command} and {PARENT_SECRET}")
        log.warning("logged: %s", SECRET)
        raise ValueError(f"failed with {SECRET} and {PARENT_SECRET}")


class AsyncLeaky(Leaky):
    async def execute(self, context: Context) -> None:  # type: ignore[override]
        super().execute(context)


with DAG("masking", user_defined_macros={"register": register}) as masking:
    for name, cls in (("sync_leak", Leaky), ("async_leak", AsyncLeaky)):
        cls(
            task_id=name,
            command="run --password {{ register('s3cr3t-value') }}",
            env={"api_key": "never-registered-key", "plain": "visible-{{ 'value' }}"},
            pin_code="pin-{{ 1234 }}",
        )

    @task
    def body_leak() -> None:
        """Registers in the task body, then prints, logs and raises with it."""
        mask_secret(SECRET)
        print(f"printed: {SECRET}")
        log.error("logged: %s", SECRET)
        raise RuntimeError(f"failed with {SECRET}")

    @task
    async def async_body_leak() -> None:
        mask_secret({"password": SECRET, "login": "visible-login"})
        print(f"printed: {SECRET} as visible-login")
        raise RuntimeError(f"failed with {SECRET}")

    body_leak()
    async_body_leak()
