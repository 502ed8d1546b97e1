"""S3Hook and S3KeySensor against the emulator (moto's server, real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from airloop import DAG, DagRunState, task
from airloop.engine.engine import Engine
from airloop.hooks import S3Hook
from airloop.hooks.s3 import S3Error, SharedListings, parse_s3_url
from airloop.providers.aws.emulator import BatchEmulator
from airloop.providers.aws.hub import AwsCredentials, AwsHub
from airloop.runtime import resources
from airloop.sensors import S3KeySensor

from .conftest import aws_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _bucket(engine: Engine, objects: dict[str, str]) -> str:
    hub = await AwsHub.current_for(engine)
    name = f"b-{uuid.uuid4().hex[:12]}"
    await hub.call("s3", "CreateBucket", Bucket=name)
    for key, body in objects.items():
        await hub.call("s3", "PutObject", Bucket=name, Key=key, Body=body.encode())
    return name


async def test_wildcards_check_fn_and_one_listing_for_many_sensors(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        bucket = await _bucket(
            engine, {"data/2026/a.csv": "1,2,3", "data/2026/b.json": "{}", "other/x": "x"}
        )
        hub = await AwsHub.current_for(engine)
        with DAG("s3_many") as many:
            for i in range(20):
                S3KeySensor(
                    task_id=f"csv_{i}",
                    bucket_name=bucket,
                    bucket_key="data/*/*.csv",
                    wildcard_match=True,
                    poke_interval=60,
                )
        before = hub.calls["ListObjectsV2"]
        shared = await engine.run(many)
        listed = hub.calls["ListObjectsV2"] - before
        assert shared.state is DagRunState.SUCCESS, shared.failed

        with DAG("s3") as dag:
            S3KeySensor(
                task_id="url_and_list",
                bucket_key=[f"s3://{bucket}/data/2026/b.json", f"s3://{bucket}/other/x"],
                check_fn=lambda files: [f["Key"] for f in files] == ["data/2026/b.json", "other/x"],
            )
            S3KeySensor(
                task_id="too_small",
                bucket_name=bucket,
                bucket_key="data/2026/a.csv",
                check_fn=lambda files: files[0]["Size"] > 1000,
                poke_interval=0.1,
                timeout=0.5,
                soft_fail=True,
            )
            S3KeySensor(
                task_id="late",
                bucket_name=bucket,
                bucket_key="late/*.parquet",
                wildcard_match=True,
                poke_interval=0.1,
            )

            @task
            async def write_late() -> None:
                await asyncio.sleep(0.3)
                await S3Hook().load_string("p", "late/1.parquet", bucket)

            write_late()
        result = await engine.run(dag)
        states = {ti.task_id: ti.state for ti in await engine.store.task_instances(result.run_pk)}
    assert states.pop("too_small") == "skipped"
    assert set(states.values()) == {"success"}, result.failed
    # Twenty sensors on one prefix: fewer listings than sensors (they share one).
    assert listed < 20


async def test_concurrent_requests_for_one_prefix_make_one_call(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        bucket = await _bucket(engine, {f"p/{i}": "x" for i in range(3)})
        hub = await AwsHub.current_for(engine)

        with DAG("coalesce") as dag:

            @task
            async def many() -> list[int]:
                hook = S3Hook()
                found = await asyncio.gather(
                    *(hook.shared_listing(bucket, "p/", max_age=60) for _ in range(50))
                )
                listings: SharedListings = await resources().get(
                    "s3-listings", SharedListings.create
                )
                return [len(f) for f in found] + [listings.walks]

            many()
        before = hub.calls["ListObjectsV2"]
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        (xcom,) = await engine.store.xcom_values(result.run_pk)
        listed = hub.calls["ListObjectsV2"] - before
    *sizes, walks = json.loads(xcom.value)
    assert sizes == [3] * 50
    assert walks == 1
    assert listed == 1


async def test_the_connection_gives_keys_region_and_endpoint(
    emulator: BatchEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = {"region_name": "eu-west-1", "endpoint_url": emulator.endpoint_url}
    conn = {"conn_type": "aws", "login": "conn-key", "password": "conn-secret", "extra": extra}
    monkeypatch.setenv("AIRLOOP_CONN_MY_S3", json.dumps(conn))
    bad = {**conn, "extra": {**extra, "role_arn": "arn:aws:iam::1:role/x"}}
    monkeypatch.setenv("AIRLOOP_CONN_BAD_S3", json.dumps(bad))
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        bucket = await _bucket(engine, {"k": "v"})

        with DAG("conn") as dag:

            @task
            async def read() -> str:
                return await S3Hook(aws_conn_id="my_s3").read_key("k", bucket)

            @task
            async def missing() -> bool:
                return await S3Hook(aws_conn_id="my_s3").head_object("nope", bucket) is None

            S3KeySensor(task_id="bad", bucket_key=f"s3://{bucket}/k", aws_conn_id="bad_s3")
            read()
            missing()
        result = await engine.run(dag)
        hub = await AwsHub.current_for(engine)
        keys = list(hub._clients)
        tis = {ti.task_id: ti for ti in await engine.store.task_instances(result.run_pk)}
        xcoms = {x.task_id: x.value for x in await engine.store.xcom_values(result.run_pk)}
    assert tis["read"].state == "success"
    assert xcoms["read"] == '"v"'
    assert tis["missing"].state == "success"
    assert xcoms["missing"] == "true"
    ((task_id, error),) = result.failed
    assert task_id == "bad"
    assert "connection 'bad_s3': extra role_arn not supported by S3Hook" in error
    creds = AwsCredentials("conn-key", "conn-secret")
    assert ("s3", "eu-west-1", emulator.endpoint_url, creds) in keys


async def test_s3_urls_and_sensor_arguments() -> None:
    assert parse_s3_url("s3://bucket/a/b.csv") == ("bucket", "a/b.csv")
    with pytest.raises(S3Error, match="not an S3 URL"):
        parse_s3_url("a/b.csv")
    with DAG("args"):
        with pytest.raises(Exception, match="use_regex"):
            S3KeySensor(task_id="r", bucket_key="k", bucket_name="b", use_regex=True)
        with pytest.raises(Exception, match="bucket_key must be a key or a list"):
            S3KeySensor(task_id="e", bucket_key=[])


async def test_aws_base_hook_calls_any_service_with_the_connections_place(
    emulator: BatchEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AwsBaseHook(client_type=...) in a task: a service other than S3 (Secrets
    Manager), with region and endpoint from the connection; no client_type is an error."""
    from airloop.hooks import AwsBaseHook, AwsHookError

    monkeypatch.setenv(
        "AIRLOOP_CONN_AWS_SM",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": "eu-west-1", "endpoint_url": emulator.endpoint_url},
            }
        ),
    )
    name = f"s-{uuid.uuid4().hex[:8]}"
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        with DAG("aws_base") as dag:

            @task
            async def roundtrip() -> str:
                hook = AwsBaseHook(aws_conn_id="aws_sm", client_type="secretsmanager")
                await hook.call("CreateSecret", Name=name, SecretString="v4lue")
                got = await hook.call("GetSecretValue", SecretId=name)
                assert (await hook.target()).region == "eu-west-1"
                with pytest.raises(AwsHookError, match="client_type"):
                    await AwsBaseHook(aws_conn_id="aws_sm").call("ListSecrets")
                return str(got["SecretString"])

            roundtrip()
        result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
