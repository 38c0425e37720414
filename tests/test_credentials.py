"""Tests of scingestor.credentials: the four file forms, errors, re-reading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scingestor.config import config_from_mapping
from scingestor.credentials import (
    CredentialError,
    Credentials,
    CredentialSource,
    read_credential_file,
    read_credentials,
    read_token_file,
)
from scingestor.secret import Secret


def write(tmp_path: Path, text: str, name: str = "cred") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def assert_hidden(creds: Credentials, *values: str) -> None:
    for value in values:
        assert value not in repr(creds)
        assert value not in str(creds)


def test_jwt_token(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"jwt": "eyJ-token-jwt-123"}) + "\n")
    creds = read_credential_file(path, "ingestor")
    assert not creds.needs_login
    assert isinstance(creds.token, Secret)
    assert creds.token.reveal() == "eyJ-token-jwt-123"
    assert creds.password is None
    assert_hidden(creds, "eyJ-token-jwt-123")


def test_id_token(tmp_path: Path) -> None:
    path = write(tmp_path, '  {"id": "token-by-id-42"}  ')
    creds = read_credential_file(path, "ingestor")
    assert not creds.needs_login
    assert creds.token is not None and creds.token.reveal() == "token-by-id-42"
    assert_hidden(creds, "token-by-id-42")


def test_username_and_password(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"username": "bl_ingestor", "password": "pw-S3cret!"}))
    creds = read_credential_file(path, "ingestor")
    assert creds.needs_login
    assert creds.username == "bl_ingestor"
    assert creds.password is not None and creds.password.reveal() == "pw-S3cret!"
    assert creds.token is None
    assert_hidden(creds, "pw-S3cret!")


def test_password_only_json_uses_default_user(tmp_path: Path) -> None:
    creds = read_credential_file(write(tmp_path, '{"password": "only-pw-99"}'), "p99user")
    assert creds.username == "p99user"
    assert creds.password is not None and creds.password.reveal() == "only-pw-99"


@pytest.mark.parametrize("text", ["plain-pass-word\n", "  plain-pass-word  ", '["list-pw-1"]'])
def test_plain_text_is_the_password(tmp_path: Path, text: str) -> None:
    creds = read_credential_file(write(tmp_path, text), "ingestor")
    assert creds.needs_login
    assert creds.username == "ingestor"
    assert creds.password is not None and creds.password.reveal() == text.strip()
    assert_hidden(creds, text.strip())


def test_numeric_password(tmp_path: Path) -> None:
    creds = read_credential_file(write(tmp_path, "987654321"), "ingestor")
    assert creds.password is not None and creds.password.reveal() == "987654321"


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.json")
    with pytest.raises(CredentialError) as info:
        read_credential_file(path, "ingestor")
    assert str(info.value) == f"{path}: cannot read credential file: No such file or directory"


@pytest.mark.parametrize("text", ["", "  \n\t\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CredentialError) as info:
        read_credential_file(path, "ingestor")
    assert str(info.value) == f"{path}: credential file is empty"


@pytest.mark.parametrize(
    ("text", "fragment", "hidden"),
    [
        ('{"username": "lonely-user-x"}', "no password", "lonely-user-x"),
        ('{"jwt": ["tok-in-list-77"]}', "'jwt' must be a string", "tok-in-list-77"),
        ('{"password": ""}', "'password' is empty", None),
        ('{"other": "misc-value-88"}', "none of jwt, id, username, password", "misc-value-88"),
    ],
)
def test_malformed_json_never_shows_contents(
    tmp_path: Path, text: str, fragment: str, hidden: str | None
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CredentialError) as info:
        read_credential_file(path, "ingestor")
    message = str(info.value)
    assert message.startswith(path + ": ")
    assert fragment in message
    if hidden:
        assert hidden not in message
        assert hidden not in repr(info.value)


def test_read_credentials_from_config(tmp_path: Path) -> None:
    path = write(tmp_path, "cfg-password-1")
    cfg = config_from_mapping({"ingestor_credential_file": path, "ingestor_username": "bob"})
    creds = read_credentials(cfg)
    assert creds.username == "bob"
    assert creds.password is not None and creds.password.reveal() == "cfg-password-1"
    with pytest.raises(CredentialError, match="ingestor_credential_file is not set"):
        read_credentials(config_from_mapping({}))


def test_source_rereads_when_mtime_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "first-password")
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    source = CredentialSource(path, "ingestor")
    first = source.get()
    assert first.password is not None and first.password.reveal() == "first-password"
    assert source.get() is first
    assert source.load() is first
    Path(path).write_text('{"jwt": "second-token"}', encoding="utf-8")
    os.utime(path, ns=(1_000_000_001_000_000_000, 1_000_000_001_000_000_000))
    second = source.get()
    assert second.token is not None and second.token.reveal() == "second-token"
    assert "second-token" not in repr(source)
    os.unlink(path)
    with pytest.raises(CredentialError, match="No such file"):
        source.get()


def test_source_from_config(tmp_path: Path) -> None:
    path = write(tmp_path, '{"id": "abc-token-1"}')
    source = CredentialSource.from_config(config_from_mapping({"ingestor_credential_file": path}))
    token = source.get().token
    assert token is not None and token.reveal() == "abc-token-1"
    with pytest.raises(CredentialError):
        CredentialSource.from_config(config_from_mapping({}))


def test_token_file(tmp_path: Path) -> None:
    assert read_token_file(write(tmp_path, " tok-file-1 \n")).reveal() == "tok-file-1"
    empty = write(tmp_path, "\n", "empty")
    with pytest.raises(CredentialError, match="token file is empty"):
        read_token_file(empty)
    with pytest.raises(CredentialError, match="cannot read token file"):
        read_token_file(str(tmp_path / "missing"))
