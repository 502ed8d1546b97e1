"""A local AWS Batch emulator (moto's server plus Batch jobs that take time).

Needs ``pip install "airloop[aws-emulator]"``. Start it from async code with
``async with BatchEmulator() as emu: ...`` or from a shell with
``airloop dev aws-emulator``.
"""

from airloop.providers.aws.emulator.launcher import BatchEmulator

__all__ = ["BatchEmulator"]
