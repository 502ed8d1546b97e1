"""The secrets masker (core/masking.py): registration, redaction, names, threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from airloop.core import masking
from airloop.core.masking import MASK, SecretsMasker


@pytest.fixture
def masker() -> SecretsMasker:
    return SecretsMasker()


@pytest.fixture
def process_masker() -> Iterator[None]:
    """The process-wide masker, emptied again afterwards."""
    masking.MASKER.reset()
    yield
    masking.MASKER.reset()


def test_nothing_registered_returns_the_same_text(masker: SecretsMasker) -> None:
    text = "nothing to hide here"
    assert masker.redact_text(text) is text
    assert not masker.active
    assert masker.secrets() == ()


def test_a_registered_string_is_masked_everywhere_in_text(masker: SecretsMasker) -> None:
    masker.mask_secret("s3cr3t-value")
    assert masker.active
    assert masker.redact_text("a s3cr3t-value and s3cr3t-value.") == "a *** and ***."
    assert masker.redact_text("unrelated") == "unrelated"


def test_short_secrets_are_ignored(masker: SecretsMasker) -> None:
    masker.mask_secret("abcd")
    masker.mask_secret("")
    assert not masker.active
    assert masker.redact_text("abcd abcd") == "abcd abcd"
    masker.mask_secret("abcde")
    assert masker.redact_text("abcde") == MASK


def test_regex_characters_in_secrets_are_literal(masker: SecretsMasker) -> None:
    masker.mask_secret("p.a*s+s(1)")
    assert masker.redact_text("pXassss(1) p.a*s+s(1)") == "pXassss(1) ***"


def test_the_longest_secret_wins(masker: SecretsMasker) -> None:
    masker.mask_secret("token-abc")
    masker.mask_secret("token-abc-and-more")
    assert masker.redact_text("x token-abc-and-more y") == "x *** y"


def test_escaped_forms_are_masked(masker: SecretsMasker) -> None:
    """A traceback shows repr(); a stored JSON value escapes quotes and newlines."""
    secret = 'line one\nline "two"'
    masker.mask_secret(secret)
    assert masker.redact_text(repr(secret)) == "'***'"
    assert masker.redact_text(json.dumps(secret)) == '"***"'
    assert masker.redact_text(secret) == MASK


def test_a_mapping_registers_values_under_sensitive_keys(masker: SecretsMasker) -> None:
    masker.mask_secret(
        {
            "login": "visible-login",
            "password": "hunter22",
            "extra": {"api_key": "key-12345", "region": "eu-west-1", "n": 5},
            "auth": [{"access_token": "tok-67890"}],
        }
    )
    assert set(masker.secrets()) == {"hunter22", "key-12345", "tok-67890"}
    text = "visible-login hunter22 key-12345 eu-west-1 tok-67890"
    assert masker.redact_text(text) == "visible-login *** *** eu-west-1 ***"


def test_a_sensitive_name_registers_a_whole_mapping(masker: SecretsMasker) -> None:
    masker.mask_secret({"user": "someone", "port": 54321}, name="secret_config")
    assert set(masker.secrets()) == {"someone", "54321"}


def test_a_string_with_a_plain_name_is_not_registered(masker: SecretsMasker) -> None:
    """As Airflow's mask_secret: a named value is a secret only if its name looks one."""
    masker.mask_secret("not-a-secret", name="hostname")
    masker.mask_secret("is-a-secret", name="db_password")
    assert masker.secrets() == ("is-a-secret",)


def test_an_iterable_registers_each_value(masker: SecretsMasker) -> None:
    masker.mask_secret(["first-secret", "second-secret", "first-secret"])
    assert masker.secrets() == ("first-secret", "second-secret")


def test_redact_structures(masker: SecretsMasker) -> None:
    masker.mask_secret("s3cr3t-value")
    value = {
        "cmd": "run --pass s3cr3t-value",
        "list": ["s3cr3t-value", 1, None],
        "tuple": ("ok", "s3cr3t-value!"),
        "password": "whatever-it-is",
        "nested": {"Api_Key": {"a": "x", "b": [1, 2]}, "plain": "fine"},
        "number": 7,
    }
    redacted = masker.redact(value)
    assert redacted == {
        "cmd": "run --pass ***",
        "list": ["***", 1, None],
        "tuple": ("ok", "***!"),
        "password": MASK,
        "nested": {"Api_Key": {"a": MASK, "b": [MASK, MASK]}, "plain": "fine"},
        "number": 7,
    }
    assert value["cmd"] == "run --pass s3cr3t-value"  # a copy: the original is untouched


def test_redact_by_name(masker: SecretsMasker) -> None:
    assert masker.redact("anything", name="password") == MASK
    assert masker.redact("anything", name="hostname") == "anything"
    assert masker.redact(None, name="password") is None
    assert masker.redact("", name="token") == ""


def test_redact_without_secrets_still_hides_sensitive_keys(masker: SecretsMasker) -> None:
    assert masker.redact({"token": "abc", "x": "abc"}) == {"token": MASK, "x": "abc"}


def test_redact_stops_at_a_cycle(masker: SecretsMasker) -> None:
    masker.mask_secret("s3cr3t-value")
    loop: list[object] = ["s3cr3t-value"]
    loop.append(loop)
    redacted = masker.redact(loop)
    assert redacted[0] == MASK


@pytest.mark.parametrize(
    ("key", "hidden"),
    [
        ("password", True),
        ("DB_PASSWORD", True),
        ("aws_secret_access_key", True),
        ("github_token", True),
        ("Authorization", True),
        ("keyfile_dict", True),
        ("private_key", True),
        ("apikey", True),
        ("passphrase", True),
        ("service_account_json", True),
        ("hostname", False),
        ("login", False),
        ("", False),
        (3, False),
    ],
)
def test_should_hide_value_for_key(masker: SecretsMasker, key: object, hidden: bool) -> None:
    assert masker.should_hide_value_for_key(key) is hidden


def test_sensitive_var_conn_names_extend_the_defaults(masker: SecretsMasker) -> None:
    assert not masker.should_hide_value_for_key("my_pin_code")
    masker.set_sensitive_names(masking.parse_sensitive_names(" pin_code, ,Signing "))
    assert masker.should_hide_value_for_key("my_pin_code")
    assert masker.should_hide_value_for_key("signing_cert")
    assert masker.should_hide_value_for_key("password")  # the defaults stay
    assert masker.redact({"PIN_CODE": "1234"}) == {"PIN_CODE": MASK}


def test_parse_sensitive_names() -> None:
    assert masking.parse_sensitive_names("") == frozenset()
    assert masking.parse_sensitive_names("a, B ,,c") == frozenset({"a", "b", "c"})


def test_secrets_registered_from_threads_are_all_kept(masker: SecretsMasker) -> None:
    def register(n: int) -> None:
        for i in range(50):
            masker.mask_secret(f"secret-{n}-{i:03d}")

    threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(masker.secrets()) == 400
    text = " ".join(f"secret-{n}-{i:03d}" for n in range(8) for i in range(50))
    assert set(masker.redact_text(text).split()) == {MASK}


def test_add_takes_another_process_secrets(masker: SecretsMasker) -> None:
    other = SecretsMasker()
    other.mask_secret({"password": "from-the-worker"})
    masker.add(other.secrets())
    masker.add(["tiny", "from-the-worker"])
    assert masker.secrets() == ("from-the-worker",)
    assert masker.redact_text("from-the-worker") == MASK


def test_module_functions_use_the_process_masker(process_masker: None) -> None:
    import airloop

    airloop.mask_secret("module-level-secret")
    assert masking.redact_text("is module-level-secret") == "is ***"
    assert masking.redact(["module-level-secret"]) == [MASK]
    assert masking.should_hide_value_for_key("password")
    assert masking.secrets() == ("module-level-secret",)
    masking.add_secrets(["another-secret"])
    assert masking.secrets() == ("module-level-secret", "another-secret")


def test_numbers_are_registered_as_written(masker: SecretsMasker) -> None:
    masker.mask_secret(123456)
    masker.mask_secret(x for x in ("from-a-generator",))
    assert masker.secrets() == ("123456", "from-a-generator")


@pytest.mark.parametrize("value", [b"bytes-secret", True, object(), ["ok-secret", b"bytes"]])
def test_what_cannot_be_masked_is_refused(masker: SecretsMasker, value: object) -> None:
    with pytest.raises(TypeError, match=r"^mask_secret: cannot mask a (bytes|bool|object) "):
        masker.mask_secret(value)
