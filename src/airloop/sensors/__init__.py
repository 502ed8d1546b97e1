"""The everyday sensors: each waits as a coroutine, never holding a thread or a process."""

# -- cross-DAG (issue 12) -- one block per area: explicit re-exports, no shared __all__
from airloop.sensors.external_task import ExternalTaskMarker as ExternalTaskMarker
from airloop.sensors.external_task import ExternalTaskSensor as ExternalTaskSensor

# -- AWS S3 (issue 12) -- one block per area: explicit re-exports, no shared __all__
from airloop.sensors.s3 import S3KeySensor as S3KeySensor
