"""The connection model's URI and JSON forms, and the environment source."""

from __future__ import annotations

import pytest

from airloop.connections import Connection, ConnectionNotFound, InvalidConnection
from airloop.connections.sources import EnvironmentSource, find_connection


@pytest.mark.parametrize(
    "uri",
    [
        "postgres://us%40er:p%2Fw@db.example:5432/mydb?sslmode=require",
        "http://h?__extra__=%7B%22a%22%3A+%7B%22b%22%3A+1%7D%7D",
        "aws://",
        "mysql://root@127.0.0.1:3306/test",
    ],
)
def test_uri_round_trips(uri: str) -> None:
    conn = Connection.from_uri("c", uri)
    assert Connection.from_uri("c", conn.get_uri()) == conn


def test_uri_parts_are_decoded() -> None:
    conn = Connection.from_uri("c", "google-cloud-platform://us%40er:p%2Fw@host:1/db?k=v")
    assert conn.conn_type == "google_cloud_platform"
    assert (conn.login, conn.password, conn.host, conn.port, conn.schema) == (
        "us@er",
        "p/w",
        "host",
        1,
        "db",
    )
    assert conn.extra_dejson == {"k": "v"}


def test_json_form_and_bad_input() -> None:
    conn = Connection.parse("c", '{"conn_type": "http", "host": "h", "extra": {"k": 1}}')
    assert conn.extra_dejson == {"k": 1}
    assert Connection.parse("c", conn.as_json()) == conn
    with pytest.raises(InvalidConnection, match="unknown field"):
        Connection.parse("c", '{"hots": "h"}')
    with pytest.raises(InvalidConnection, match="not a connection URI"):
        Connection.parse("c", "just-text")
    with pytest.raises(InvalidConnection, match="port"):
        Connection.parse("c", "http://h:notaport")
    with pytest.raises(InvalidConnection, match="extra is not JSON"):
        Connection(conn_id="c", extra="{nope")


def test_password_is_not_in_repr() -> None:
    assert "s3cret" not in repr(Connection(conn_id="c", password="s3cret"))


async def test_environment_source_and_not_found() -> None:
    env = {"AIRLOOP_CONN_MY_DB": "postgres://u@h/db"}
    sources = [EnvironmentSource(env)]
    assert (await find_connection("my_db", sources)).host == "h"
    with pytest.raises(ConnectionNotFound, match="AIRLOOP_CONN_OTHER"):
        await find_connection("other", sources)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"password": 12345678}', "password"),
        ('{"host": ["a", "b"]}', "host"),
        ('{"conn_type": 5}', "conn_type"),
        ('{"login": {"u": 1}}', "login"),
    ],
)
def test_a_json_field_of_the_wrong_type_is_a_clear_error(text: str, field: str) -> None:
    """Text fields must be text: a number or list is refused naming the field (never its
    value: it may be the password), not stored to crash on encryption later."""
    with pytest.raises(InvalidConnection) as info:
        Connection.from_json("c", text)
    assert str(info.value).startswith(f"connection 'c': {field} must be a string")
    assert "12345678" not in str(info.value)


async def test_a_malformed_environment_connection_names_its_variable() -> None:
    """As the AWS backend names its secret: the error says where the bad text is."""
    sources = [EnvironmentSource({"AIRLOOP_CONN_MY_DB": "garbage"})]
    with pytest.raises(InvalidConnection) as info:
        await find_connection("my_db", sources)
    assert str(info.value) == (
        "environment variable AIRLOOP_CONN_MY_DB: connection 'my_db': "
        "not a connection URI (expected TYPE://...)"
    )


def test_a_json_conn_id_that_differs_from_the_id_is_refused() -> None:
    """{"a": {"conn_id": "b", ...}} in an import file: not silently stored as "a"."""
    assert Connection.from_json("a", {"conn_id": "A", "host": "h"}).host == "h"
    with pytest.raises(InvalidConnection) as info:
        Connection.from_json("a", {"conn_id": "b", "host": "h"})
    assert str(info.value) == "connection 'a': the JSON form's conn_id is 'b'"


async def test_a_secret_extra_is_masked_in_the_uri_form_too() -> None:
    """A token with / + = (base64) appears percent-encoded in get_uri(): masked there too,
    as the password is."""
    from airloop.core import masking

    masking.MASKER.reset()
    try:
        env = {
            "AIRLOOP_CONN_API": '{"conn_type": "http", "host": "h", "extra": {"token": "ab/cd+ef=="}}'
        }
        conn = await find_connection("api", [EnvironmentSource(env)])
        shown = masking.redact_text(f"using {conn.get_uri()}")
        assert "ab" not in shown.split("token=", 1)[1], shown
    finally:
        masking.MASKER.reset()
