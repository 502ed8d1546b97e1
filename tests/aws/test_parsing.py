"""The lean JSON parsers give what botocore's give: real service models, no network."""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore.session
import pytest
from aiobotocore.parsers import AioJSONParser, AioRestJSONParser

from airloop.providers.aws.hub import AwsHub
from airloop.providers.aws.parsing import LeanJSONParser, LeanParserFactory, LeanRestJSONParser
from airloop.settings import AwsSettings

MODELS = botocore.session.get_session()

JOB = {
    "jobArn": "arn:aws:batch:us-east-1:123456789012:job/0a1b",
    "jobName": "fanout-job-7-t1-abc",
    "jobId": "0a1b",
    "jobQueue": "q",
    "status": "FAILED",
    "statusReason": "Essential container in task exited",
    "statusDetail": None,  # null: left out, as botocore does
    "createdAt": 1796216772105,
    "startedAt": 1796216773105,
    "stoppedAt": 1796216793105,
    "dependsOn": [{"jobId": "ff", "type": "SEQUENTIAL"}],
    "jobDefinition": "jd",
    "parameters": {"i": "7"},
    "container": {
        "command": ["echo", "hi"],
        "environment": [{"name": "A", "value": "b"}],
        "exitCode": 3,
        "logStreamName": "jd/default/0a1b",
        "resourceRequirements": [{"type": "VCPU", "value": "1"}],
    },
    "attempts": [{"container": {"exitCode": 3}, "startedAt": 1, "stoppedAt": 2}],
    "arrayProperties": {"statusSummary": {"SUCCEEDED": 2}, "size": 2},
    "tags": {},
    "isCancelled": False,
    "notInTheModel": {"ignored": True},  # unknown keys are dropped either way
}

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("batch", "DescribeJobs", {"jobs": [JOB, {**JOB, "jobId": "2", "container": None}]}),
    ("batch", "DescribeJobs", {"jobs": []}),
    ("batch", "SubmitJob", {"jobArn": "arn", "jobName": "n", "jobId": "i"}),
    (
        "batch",
        "ListJobs",
        {
            "jobSummaryList": [
                {"jobId": "i", "jobName": "n", "createdAt": 5, "status": "RUNNING"},
                {"jobId": "j", "jobName": "n", "container": {"exitCode": 0}},
            ],
            "nextToken": "t",
        },
    ),
    (
        "secretsmanager",
        "GetSecretValue",
        {
            "ARN": "arn",
            "Name": "db",
            "SecretBinary": base64.b64encode(b"\x00\x01").decode(),
            "SecretString": "s",
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1796216772.5,
        },
    ),
    (
        "secretsmanager",
        "DescribeSecret",
        {
            "ARN": "arn",
            "Name": "db",
            "LastChangedDate": 1796216772.25,
            "Tags": [{"Key": "k", "Value": "v"}],
            "VersionIdsToStages": {"v1": ["AWSCURRENT"]},
            "RotationEnabled": True,
        },
    ),
]


def parsers(service: str) -> tuple[Any, Any]:
    protocol = MODELS.get_service_model(service).metadata["protocol"]
    if protocol == "rest-json":
        return AioRestJSONParser(), LeanRestJSONParser()
    return AioJSONParser(), LeanJSONParser()


@pytest.mark.parametrize(("service", "action", "body"), CASES)
async def test_the_lean_parse_equals_botocores(
    service: str, action: str, body: dict[str, Any]
) -> None:
    shape = MODELS.get_service_model(service).operation_model(action).output_shape
    botocores, lean = parsers(service)
    answer = {"status_code": 200, "headers": {"x-amzn-requestid": "r"}, "body": json.dumps(body)}
    expected = await botocores.parse(dict(answer, body=answer["body"].encode()), shape)
    got = await lean.parse(dict(answer, body=answer["body"].encode()), shape)
    assert got == expected
    # A second parse goes through the per-shape cache.
    assert await lean.parse(dict(answer, body=answer["body"].encode()), shape) == expected


async def test_an_error_answer_parses_as_botocores() -> None:
    shape = MODELS.get_service_model("batch").operation_model("SubmitJob").output_shape
    answer = {
        "status_code": 400,
        "headers": {"x-amzn-ErrorType": "ClientException"},
        "body": json.dumps({"__type": "ClientException", "message": "bad queue"}).encode(),
    }
    botocores, lean = parsers("batch")
    assert await lean.parse(dict(answer), shape) == await botocores.parse(dict(answer), shape)


def test_the_factory_gives_lean_json_parsers_and_botocores_others() -> None:
    factory = LeanParserFactory()
    assert isinstance(factory.create_parser("rest-json"), LeanRestJSONParser)
    assert isinstance(factory.create_parser("json"), LeanJSONParser)
    assert not isinstance(factory.create_parser("query"), (LeanRestJSONParser, LeanJSONParser))


async def test_the_hubs_clients_parse_leanly() -> None:
    hub = AwsHub(AwsSettings(region="us-east-1", access_key_id="a", secret_access_key="b"))
    try:
        client = await hub.client("batch", endpoint_url="http://127.0.0.1:1")
        assert isinstance(client._endpoint._response_parser_factory, LeanParserFactory)
    finally:
        await hub.aclose()
