"""``airloop dev ...``: local stand-ins for production services."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from airloop.cli.common import out

app = typer.Typer(help="Local development helpers.", no_args_is_help=True)


@app.command("aws-emulator")
def aws_emulator(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 4566,
    queue: Annotated[str, typer.Option(help="Job queue to create.")] = "airloop",
    job_definition: Annotated[str, typer.Option(help="Job definition to create.")] = "airloop-job",
    job_seconds: Annotated[float, typer.Option(help="Default job duration.")] = 30.0,
    failure_rate: Annotated[float, typer.Option(help="Fraction of jobs that fail.")] = 0.0,
) -> None:
    """Run a local AWS Batch emulator (moto's server + job lifecycles) until Ctrl-C or SIGTERM."""
    from airloop.providers.aws.emulator import BatchEmulator

    async def serve() -> None:
        # SIGTERM (what a supervisor or `kill` sends) stops it like Ctrl-C: leaving the
        # `async with` stops the server process and frees its port. Without this,
        # SIGTERM killed the command and left the server running, the port held.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run(stop)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def run(stop: asyncio.Event) -> None:
        async with BatchEmulator(port=port) as emu:
            queue_arn, definition_arn = await emu.setup_batch(queue, job_definition)
            await emu.configure(default_seconds=job_seconds, failure_rate=failure_rate)
            out.print(f"AWS Batch emulator on {emu.endpoint_url}")
            out.print(f"  job queue       {queue_arn}")
            out.print(f"  job definition  {definition_arn}")
            out.print("Point airloop at it:")
            out.print(f"  export AIRLOOP_AWS__ENDPOINT_URL={emu.endpoint_url}")
            out.print("  export AIRLOOP_AWS__REGION=us-east-1")
            out.print(
                "  export AIRLOOP_AWS__ACCESS_KEY_ID=testing AIRLOOP_AWS__SECRET_ACCESS_KEY=testing"
            )
            out.print("Stats: GET /airloop-emulator/stats; Ctrl-C to stop.")
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the handlers exist
        asyncio.run(serve())
    out.print("stopped")
