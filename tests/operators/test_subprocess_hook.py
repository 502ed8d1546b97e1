"""SubprocessHook with real bash: decoding, long lines, start errors, and what a
cancellation leaves (nothing alive in the group, bash reaped)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import psutil
import pytest

from airloop.hooks.subprocess import MAX_LINE, SubprocessHook, SubprocessStartError, group_alive


def collect() -> tuple[list[str], Any]:
    lines: list[str] = []
    return lines, lines.append


async def test_lines_are_decoded_as_airflow_does_and_long_ones_are_cut() -> None:
    lines, on_line = collect()
    result = await SubprocessHook().run_command(
        [
            "bash",
            "-c",
            f"printf 'caf\\xe9 \\xff  \\n'; head -c {MAX_LINE + 10} /dev/zero | tr '\\0' a; "
            "echo; exit 4",
        ],
        output_encoding="utf-8",
        on_line=on_line,
    )
    assert result.exit_code == 4
    assert lines[0] == "caf\\xe9 \\xff"  # backslash-escaped, trailing blanks stripped
    assert [len(line) for line in lines[1:]] == [MAX_LINE, 10]
    assert result.output == "a" * 10
    latin, on_latin = collect()
    await SubprocessHook().run_command(
        ["bash", "-c", "printf 'caf\\xe9\\n'"], output_encoding="latin-1", on_line=on_latin
    )
    assert latin == ["café"]


async def test_start_errors_say_why(tmp_path: Any) -> None:
    with pytest.raises(SubprocessStartError, match="cwd '/nonexistent/x' does not exist"):
        await SubprocessHook().run_command(["bash", "-c", "true"], cwd="/nonexistent/x")
    with pytest.raises(SubprocessStartError, match="'no-such-shell' not found on PATH"):
        await SubprocessHook().run_command(["no-such-shell", "-c", "true"])


@pytest.mark.parametrize("stubborn", [False, True])
async def test_cancelling_kills_the_group_and_reaps_bash(stubborn: bool) -> None:
    trap = "trap '' TERM; " if stubborn else ""
    command = trap + '(sleep 300 & echo "child $!"; wait) & sleep 300 & echo "child $!"; wait'
    lines, on_line = collect()
    hook = SubprocessHook()
    arrived = asyncio.Event()

    def seen(line: str) -> None:
        on_line(line)
        if sum(1 for x in lines if x.startswith("child")) == 2:
            arrived.set()

    runner = asyncio.create_task(hook.run_command(["bash", "-c", command], on_line=seen))
    async with asyncio.timeout(30):
        await arrived.wait()
    leader = hook.pid
    assert leader is not None
    runner.cancel()
    if stubborn:  # a second cancellation during the grace: SIGKILL at once
        await asyncio.sleep(0)
        runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert not await asyncio.to_thread(group_alive, leader)
    assert not psutil.pid_exists(leader), "bash is reaped"
    for pid in (int(m) for m in re.findall(r"child (\d+)", " ".join(lines))):
        try:
            status = psutil.Process(pid).status()
        except psutil.NoSuchProcess:
            continue
        assert status == psutil.STATUS_ZOMBIE, f"{pid} is {status}"
