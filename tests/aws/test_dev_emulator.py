"""``airloop dev aws-emulator`` as a user runs it: a real process, stopped by a signal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys

import pytest

pytestmark = pytest.mark.slow


async def port_is_free(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_the_emulator_and_frees_its_port(sig: signal.Signals) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "airloop", "dev", "aws-emulator", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group: the test can clean up after it
    )  # fmt: skip
    assert process.stdout is not None
    try:
        port = None
        async with asyncio.timeout(90):
            while port is None:
                line = (await process.stdout.readline()).decode()
                assert line, "the emulator exited before it was ready"
                found = re.search(r"AWS Batch emulator on http://127\.0\.0\.1:(\d+)", line)
                port = int(found.group(1)) if found else None
        assert not await port_is_free(port)
        process.send_signal(sig)
        async with asyncio.timeout(30):
            rest = (await process.stdout.read()).decode()
            await process.wait()
        assert process.returncode == 0, rest
        assert "stopped" in rest
        assert await port_is_free(port), "the emulator server outlived its command"
    finally:
        # Whatever is left of the group (only after a failure): end it.
        with contextlib.suppress(ProcessLookupError):  # the usual case: nothing left
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
