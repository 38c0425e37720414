"""SciCatClient against the development server over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from scingestor.config import config_from_mapping
from scingestor.credentials import CredentialSource
from scingestor.scicat.client import SciCatClient
from scingestor.scicat.errors import (
    DeleteForbiddenError,
    RejectedError,
    SciCatAuthError,
    SciCatConnectionError,
    SciCatError,
    SciCatForbiddenError,
    ServerError,
)
from scingestor.scicat.urls import encode_segment
from scingestor.secret import Secret

logger = logging.getLogger(__name__)

PASSWORD = "12342345"
LOGIN = r"/(auth|Users)/login$"


def make_config(url: str, **extra):
    data = {
        "scicat_url": url,
        "scicat_users_login_path": "auth/login",
        "retry_backoff_initial": 0.001,
        "retry_backoff_max": 5,
        "max_request_tries_number": 5,
        "request_timeout": 10,
    }
    data.update(extra)
    return config_from_mapping(data)


def credentials(tmp_path, text: str | None = None) -> CredentialSource:
    path = tmp_path / "pwd"
    path.write_text(text if text is not None else json.dumps(
        {"username": "ingestor", "password": PASSWORD}))
    return CredentialSource(str(path), "ingestor")


def make_client(server, tmp_path, text: str | None = None, **extra) -> SciCatClient:
    return SciCatClient(make_config(server.url, **extra), credentials(tmp_path, text))


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class StartOnWait(threading.Event):
    """A stop event whose first backoff wait brings the server up."""

    def __init__(self, handle) -> None:
        super().__init__()
        self.handle = handle
        self.waits = 0

    def wait(self, timeout=None) -> bool:
        self.waits += 1
        if self.waits == 1:
            self.handle.start()
        return self.is_set()


def test_login_on_auth_path_sends_exact_body_and_caches_token(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path)
    client.get("Datasets")
    client.get("Datasets")
    logins = scicat_server.requests_matching("POST", LOGIN)
    assert [r.path for r in logins] == ["/api/v3/auth/login"]
    assert logins[0].body == '{"username": "ingestor", "password": "12342345"}'
    gets = scicat_server.requests_matching("GET", "Datasets")
    assert len(gets) == 2
    assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in gets)
    assert all(r.status == 200 for r in gets)


def test_legacy_path_with_empty_answer_falls_back_with_warning(scicat_server, tmp_path,
                                                              caplog):
    client = make_client(scicat_server, tmp_path, scicat_users_login_path="Users/login")
    with caplog.at_level(logging.WARNING, logger="scingestor.scicat.client"):
        client.get("Datasets")
    assert client.login_path == "auth/login"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "scicat_users_login_path: auth/login" in warnings[0].getMessage()
    # the working path is remembered: the next login goes straight to it
    scicat_server.clear_requests()
    scicat_server.expire_tokens()
    client.get("Datasets")
    assert [r.path for r in scicat_server.requests_matching("POST", LOGIN)] == [
        "/api/v3/auth/login"]


@pytest.mark.devserver(users_login_mode="legacy")
def test_legacy_server_answering_id_on_users_login(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path, scicat_users_login_path="Users/login")
    response = client.get("Datasets")
    assert response.status_code == 200
    assert [r.path for r in scicat_server.requests_matching("POST", LOGIN)] == [
        "/api/v3/Users/login"]
    assert client.login_path == "Users/login"


def test_ready_token_in_credential_file_makes_no_login(scicat_server, tmp_path):
    token = scicat_server.server.accounts.login("ingestor", PASSWORD).value
    client = make_client(scicat_server, tmp_path, json.dumps({"jwt": token}))
    client.get("Datasets")
    assert scicat_server.requests_matching("POST", LOGIN) == []
    (get,) = scicat_server.requests_matching("GET", "Datasets")
    assert get.headers["authorization"] == f"Bearer {token}"


def test_token_argument_without_credentials(scicat_server):
    token = scicat_server.server.accounts.login("ingestor", PASSWORD).value
    client = SciCatClient(make_config(scicat_server.url), token=Secret(token))
    assert client.get("Datasets").status_code == 200
    scicat_server.expire_tokens()
    with pytest.raises(SciCatAuthError) as info:
        client.get("Datasets")
    assert info.value.status == 401
    assert scicat_server.requests_matching("POST", LOGIN) == []


def test_refused_token_leads_to_one_relogin_and_repeat(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path)
    client.get("Datasets")
    scicat_server.expire_tokens()
    assert client.get("Datasets").status_code == 200
    statuses = [(r.method, r.status) for r in scicat_server.requests]
    assert statuses == [("POST", 201), ("GET", 200), ("GET", 401), ("POST", 201),
                        ("GET", 200)]


def test_wrong_password_is_an_auth_error_without_fallback(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path, "not-the-password")
    with pytest.raises(SciCatAuthError) as info:
        client.get("Datasets")
    assert info.value.status == 401
    assert "Unauthorized" in str(info.value)
    assert len(scicat_server.requests_matching("POST", LOGIN)) == 1
    assert scicat_server.requests_matching("GET") == []


def test_token_older_than_its_lifetime_is_renewed_before_use(scicat_server, tmp_path):
    clock = FakeClock()
    client = SciCatClient(make_config(scicat_server.url), credentials(tmp_path), clock=clock)
    client.get("Datasets")
    clock.now += 3000  # well inside the 3600 s lifetime
    client.get("Datasets")
    assert len(scicat_server.requests_matching("POST", LOGIN)) == 1
    clock.now += 600  # now within the renewal margin
    client.get("Datasets")
    assert [(r.method, r.status) for r in scicat_server.requests] == [
        ("POST", 201), ("GET", 200), ("GET", 200), ("POST", 201), ("GET", 200)]


def test_token_not_in_query_by_default(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path)
    client.get("Datasets")
    assert all("access_token" not in r.query for r in scicat_server.requests)


@pytest.mark.devserver(accept_query_token=True)
def test_token_in_query_only_when_configured(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path, token_in_query=True)
    client.get("Datasets")
    (get,) = scicat_server.requests_matching("GET", "Datasets")
    assert get.query["access_token"] == get.headers["authorization"][len("Bearer "):]
    (login,) = scicat_server.requests_matching("POST", LOGIN)
    assert "access_token" not in login.query


@pytest.mark.devserver(accept_query_token=True)
def test_secrets_never_in_logs_or_errors(scicat_server, tmp_path, caplog):
    client = make_client(scicat_server, tmp_path, token_in_query=True,
                         max_request_tries_number=2)
    texts = []
    with caplog.at_level(logging.DEBUG):
        client.get("Datasets")
        token = client.token().reveal()
        scicat_server.faults.fail_next(2, 503, method="GET")
        with pytest.raises(SciCatError) as info:
            client.get("Datasets")
        texts += [str(info.value), repr(info.value)]
        with pytest.raises(SciCatError) as info:
            client.post("Datasets", {"bogus": 1})
        texts += [str(info.value), repr(info.value)]
        scicat_server.stop()
        with pytest.raises(SciCatConnectionError) as info:
            client.get("Datasets")
        texts += [str(info.value), repr(info.value), client.last_error, repr(client.token())]
    # the server's own access log shows the query string (that is why it is opt-in)
    ours = [r for r in caplog.records if not r.name.startswith("scingestor.devserver")]
    texts += [r.getMessage() for r in ours]
    assert any(r.name.startswith("urllib3") for r in ours)  # HTTP library lines captured
    for text in texts:
        assert token not in text
        assert PASSWORD not in text


def test_connection_refused_for_a_while_then_back(dev_server_factory, tmp_path):
    handle = dev_server_factory(started=False)
    stop = StartOnWait(handle)
    client = SciCatClient(make_config(handle.url), credentials(tmp_path), stop_event=stop)
    assert client.get("Datasets").status_code == 200
    assert stop.waits == 1
    assert client.reachable
    assert client.last_error == ""


def test_unreachable_server_gives_up_after_max_tries(dev_server_factory, tmp_path):
    handle = dev_server_factory(started=False)
    client = SciCatClient(make_config(handle.url, max_request_tries_number=3),
                          credentials(tmp_path))
    with pytest.raises(SciCatConnectionError) as info:
        client.get("Datasets")
    assert info.value.status is None
    assert "refused" in str(info.value)
    assert not client.reachable
    assert "refused" in client.last_error


def test_gateway_errors_are_retried(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path)
    scicat_server.faults.fail_next(2, 503, method="GET", path="Datasets")
    assert client.get("Datasets").status_code == 200
    assert [r.status for r in scicat_server.requests_matching("GET")] == [503, 503, 200]


def test_500_on_get_is_retried(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path)
    scicat_server.faults.fail_next(1, 500, method="GET", path="Datasets")
    assert client.get("Datasets").status_code == 200
    assert [r.status for r in scicat_server.requests_matching("GET")] == [500, 200]


@pytest.mark.parametrize("idempotent", [False, True])
def test_500_on_post_is_not_retried(scicat_server, tmp_path, idempotent):
    client = make_client(scicat_server, tmp_path)
    client.login()
    scicat_server.faults.fail_next(3, 500, method="POST", path="Datasets")
    with pytest.raises(SciCatError) as info:
        client.post("Datasets", {"type": "raw"}, idempotent=idempotent)
    assert info.value.status == 500
    assert "Internal server error" in str(info.value)
    assert len(scicat_server.requests_matching("POST", "Datasets")) == 1


@pytest.mark.parametrize("idempotent, expected", [(False, 1), (True, 3)])
def test_503_on_post_is_retried_only_when_safe(scicat_server, tmp_path, idempotent, expected):
    client = make_client(scicat_server, tmp_path)
    client.login()
    scicat_server.faults.fail_next(2, 503, method="POST", path="Datasets")
    with pytest.raises(SciCatError):
        client.post("Datasets", {}, idempotent=idempotent)
    assert len(scicat_server.requests_matching("POST", "Datasets")) == expected


def test_validation_error_carries_server_message_and_is_not_retried(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path)
    body = {"type": "raw", "bogus": 1}
    with pytest.raises(SciCatError) as info:
        client.post("Datasets", body, idempotent=True)
    error = info.value
    assert error.status == 400
    assert error.method == "POST"
    assert error.url == scicat_server.url + "/Datasets"
    assert "property bogus should not exist" in error.message
    assert str(error).startswith(f"POST {scicat_server.url}/Datasets: 400 ")
    assert len(scicat_server.requests_matching("POST", "Datasets")) == 1


@pytest.mark.devserver(restrict_ingestor=True)
def test_403_is_a_forbidden_error_with_a_hint(scicat_server, tmp_path):
    scicat_server.server.store.insert("datasets", "99001234/scan", {
        "pid": "99001234/scan", "ownerGroup": "99001234-dmgt", "accessGroups": []})
    client = make_client(scicat_server, tmp_path)
    with pytest.raises(SciCatForbiddenError) as info:
        client.get("Datasets/" + encode_segment("99001234/scan"))
    assert info.value.status == 403
    assert "admin group" in str(info.value)
    assert len(scicat_server.requests_matching("GET")) == 1


class StopDuringWait(threading.Event):
    """A stop event that is set while the client sleeps between attempts."""

    def wait(self, timeout=None) -> bool:
        self.set()
        return True


def test_stop_event_interrupts_backoff(scicat_server, tmp_path):
    stop = StopDuringWait()
    client = SciCatClient(make_config(scicat_server.url, retry_backoff_initial=30,
                                      retry_backoff_max=60),
                          credentials(tmp_path), stop_event=stop)
    client.login()
    scicat_server.faults.fail_next(4, 503, method="GET")
    with pytest.raises(SciCatConnectionError, match="stopped"):
        client.get("Datasets")
    assert len(scicat_server.requests_matching("GET")) == 1
    with pytest.raises(SciCatError):  # once stopped, no further attempts at all
        client.get("Datasets")
    assert len(scicat_server.requests_matching("GET")) == 2


def test_request_timeout_applies(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path, request_timeout=0.1,
                         max_request_tries_number=1)
    client.login()
    scicat_server.faults.set_latency(3)
    with pytest.raises(SciCatConnectionError) as info:
        client.get("Datasets")
    assert "timed out" in str(info.value)
    scicat_server.faults.clear()


def test_url_building_and_pid_encoding(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path)
    assert not scicat_server.url.endswith("/")
    assert client.url("Datasets") == scicat_server.url + "/Datasets"
    assert encode_segment("10.3204/99001234/a b?c") == "10.3204%2F99001234%2Fa%20b%3Fc"
    client.get("Datasets/" + encode_segment("99/a b"), accept=(404,))
    (get,) = scicat_server.requests_matching("GET")
    assert get.path == "/api/v3/Datasets/99%2Fa%20b"
    assert get.status == 404


def test_missing_credentials_is_an_auth_error(scicat_server):
    client = SciCatClient(make_config(scicat_server.url))
    with pytest.raises(SciCatAuthError, match="no credentials"):
        client.get("Datasets")
    assert scicat_server.requests == []


def test_unreadable_credential_file_is_an_auth_error(scicat_server, tmp_path):
    source = CredentialSource(str(tmp_path / "missing"), "ingestor")
    client = SciCatClient(make_config(scicat_server.url), source)
    with pytest.raises(SciCatAuthError, match="cannot read credential file"):
        client.get("Datasets")
    assert scicat_server.requests == []


@pytest.mark.devserver(api_version="v4")
def test_v4_url_logs_in_below_the_v3_root(scicat_server, tmp_path):
    cfg = config_from_mapping({"scicat_url": scicat_server.url, "request_timeout": 10})
    client = SciCatClient(cfg, credentials(tmp_path))
    assert client.api_version == 4
    assert client.get("datasets").status_code == 200
    logins = scicat_server.requests_matching("POST", LOGIN)
    # no login exists under v4 and the legacy path is not tried there: auth/login at once
    assert [(r.path, r.status) for r in logins] == [("/api/v3/auth/login", 201)]
    assert scicat_server.requests_matching("GET")[0].path == "/api/v4/datasets"


@pytest.mark.devserver(api_version="v4", users_login_mode="legacy")
def test_v4_url_with_a_configured_login_path(scicat_server, tmp_path):
    client = SciCatClient(make_config(scicat_server.url, scicat_users_login_path="Users/login"),
                          credentials(tmp_path))
    client.login()
    (login,) = scicat_server.requests_matching("POST", LOGIN)
    assert login.path == "/api/v3/Users/login"


@pytest.mark.parametrize("status, kind", [(500, ServerError), (404, RejectedError),
                                          (409, RejectedError)])
def test_error_types_say_what_to_do(scicat_server, tmp_path, status, kind):
    client = make_client(scicat_server, tmp_path, max_request_tries_number=1)
    client.login()
    scicat_server.faults.fail_next(1, status=status, body={"message": "no"}, method="POST")
    with pytest.raises(kind) as info:
        client.post("Samples", {"sampleId": "s"})
    assert info.value.status == status and info.value.message == "no"


def test_refused_delete_names_the_setting(scicat_server, tmp_path):
    client = make_client(scicat_server, tmp_path)
    client.login()
    scicat_server.faults.fail_next(1, status=403, method="DELETE")
    with pytest.raises(DeleteForbiddenError, match="DELETE_GROUPS"):
        client.delete("OrigDatablocks/x")


def test_probe_answers_without_login(dev_server_factory, tmp_path):
    handle = dev_server_factory(started=False)
    client = SciCatClient(make_config(handle.url), credentials(tmp_path))
    assert not client.probe()
    handle.start()
    assert client.probe()
    assert handle.requests_matching("POST", LOGIN) == []
    handle.faults.fail_next(1, status=503)
    assert not client.probe()


def test_only_the_live_token_is_masked(scicat_server, tmp_path):
    from scingestor.logsetup import mask_secrets

    client = make_client(scicat_server, tmp_path)
    first = client.login().reveal()
    assert mask_secrets(f"x {first} y") == "x *** y"
    scicat_server.expire_tokens()
    assert client.get("Datasets").status_code == 200  # refused, logged in again
    second = client.token().reveal()
    assert second != first
    assert mask_secrets(f"{first} {second}") == f"{first} ***"
