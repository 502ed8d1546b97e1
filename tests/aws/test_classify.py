"""What a failed AWS call says about its effect: a table, no network."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from airloop.providers.aws.limits import Outcome, classify

URL = "http://127.0.0.1:1/v1/submitjob"


def answer(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "SubmitJob",
    )


REFUSED = aiohttp.ClientConnectorError(
    SimpleNamespace(host="127.0.0.1", port=1, ssl=None),  # type: ignore[arg-type]  # only read
    OSError(111, "refused"),
)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (answer("TooManyRequestsException", 429), Outcome.THROTTLED),
        (answer("ThrottlingException", 400), Outcome.THROTTLED),
        (answer("ClientException", 400), Outcome.FAILED),
        (answer("AccessDeniedException", 403), Outcome.FAILED),
        (answer("ServerException", 500), Outcome.AMBIGUOUS),
        (answer("ServiceUnavailable", 503), Outcome.AMBIGUOUS),
        (ConnectTimeoutError(endpoint_url=URL), Outcome.NOT_EXECUTED),
        (EndpointConnectionError(endpoint_url=URL, error=REFUSED), Outcome.NOT_EXECUTED),
        # An open connection reset mid-request: aiobotocore raises the same class.
        (
            EndpointConnectionError(endpoint_url=URL, error=aiohttp.ClientOSError(104, "reset")),
            Outcome.AMBIGUOUS,
        ),
        (ConnectionClosedError(endpoint_url=URL), Outcome.AMBIGUOUS),
        (ReadTimeoutError(endpoint_url=URL), Outcome.AMBIGUOUS),
        (ConnectionResetError(104, "reset"), Outcome.AMBIGUOUS),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v.name,
)
def test_classify(error: Exception, outcome: Outcome) -> None:
    assert classify(error)[0] is outcome
