"""The generated Settings: parsing, validation messages, secrets, provider lookups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pydantic
import pytest

from generated.settings import SETTINGS, Settings, SettingsError, SettingSpec, parse_setting
from tests.codegen.conftest import FIXTURE


@pytest.mark.parametrize(("raw", "seconds"), [
    ("30s", 30.0), ("1m30s", 90.0), ("250ms", 0.25), ("2h", 7200.0), ("45", 45.0),
    ("1.5", 1.5), ("1h2m3s", 3723.0), ("1.5m", 90.0), ("500us", 0.0005), (" 10s ", 10.0),
])
def test_durations_become_seconds(raw: str, seconds: float) -> None:
    settings = Settings.from_env({"SERVER_READ_TIMEOUT": raw})
    assert settings.server_read_timeout == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["30x", "s", "-5s", "1m-3s", "abc", "30 s", "inf", "1d"])
def test_bad_durations_are_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SERVER_READ_TIMEOUT": raw})
    assert info.value.problems[0].startswith("SERVER_READ_TIMEOUT: ")
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize(("raw", "value"), [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True),
    ("false", False), ("False", False), ("0", False), ("no", False), ("OFF", False),
])
def test_bools(raw: str, value: bool) -> None:
    assert Settings.from_env({"ENABLE_AUTH": raw}).enable_auth is value


def test_bad_bool() -> None:
    with pytest.raises(SettingsError, match=r"ENABLE_AUTH: expected a boolean .*got 'maybe'"):
        Settings.from_env({"ENABLE_AUTH": "maybe"})


def test_ints_and_their_limits() -> None:
    assert Settings.from_env({"SERVER_PORT": "9090"}).server_port == 9090
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SERVER_PORT": "abc"})
    assert info.value.problems == ("SERVER_PORT: expected an integer, got 'abc'",)
    with pytest.raises(SettingsError, match="SERVER_PORT: must be at most 65535, got 70000"):
        Settings.from_env({"SERVER_PORT": "70000"})
    with pytest.raises(SettingsError, match="MAX_REQUEST_BODY_BYTES: must be at least 1, got 0"):
        Settings.from_env({"MAX_REQUEST_BODY_BYTES": "0"})


def test_duration_maximum_and_enum() -> None:
    with pytest.raises(SettingsError, match="OIDC_LEEWAY: must be at most 60 seconds"):
        Settings.from_env({"OIDC_LEEWAY": "2m"})
    with pytest.raises(SettingsError, match="LOG_LEVEL: must be one of debug, info, warning, "
                                            "error, got 'verbose'"):
        Settings.from_env({"LOG_LEVEL": "verbose"})


def test_every_offending_variable_is_named() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SERVER_PORT": "x", "ENABLE_AUTH": "perhaps",
                           "OPENAI_API_URL": "ftp://nope", "CLIENT_READ_TIMEOUT": "soon"})
    named = {problem.split(":", 1)[0] for problem in info.value.problems}
    assert named == {"SERVER_PORT", "ENABLE_AUTH", "OPENAI_API_URL", "CLIENT_READ_TIMEOUT"}
    assert isinstance(info.value, ValueError)


def test_empty_means_unset_and_unknown_variables_are_ignored() -> None:
    settings = Settings.from_env({"SERVER_PORT": "", "NOT_A_SETTING": "x", "PATH": "/bin"})
    assert settings == Settings()


def test_lists_are_split_and_trimmed() -> None:
    settings = Settings.from_env({"OIDC_REQUIRED_SCOPES": " read, write,,admin "})
    assert settings.oidc_required_scopes == ("read", "write", "admin")


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_MAX_CONNECTIONS", "7")
    assert Settings.from_env().client_max_connections == 7


def test_secrets_are_hidden_in_repr_and_str() -> None:
    settings = Settings.from_env({"OIDC_CLIENT_SECRET": "hunter2-client",
                                  "OPENAI_API_KEY": "sk-hunter2",
                                  "SERVER_TLS_KEY_PATH": "/keys/hunter2.pem"})
    for text in (repr(settings), str(settings)):
        assert "hunter2" not in text
    assert isinstance(settings.oidc_client_secret, pydantic.SecretStr)
    assert settings.oidc_client_secret.get_secret_value() == "hunter2-client"
    assert settings.server_tls_key_path == "/keys/hunter2.pem"


def test_a_secret_that_fails_to_parse_is_not_echoed() -> None:
    spec = SettingSpec(env="PIN", field="pin", type="int", default=None, secret=True,
                       description="", section="", maximum=10.0)
    for raw in ("12ab34", "1234"):
        with pytest.raises(ValueError) as info:
            parse_setting(spec, raw)
        assert raw not in str(info.value)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(pydantic.ValidationError):
        settings.server_port = 1  # type: ignore[misc]


def test_field_names_are_the_variables_lower_cased() -> None:
    assert [spec.field for spec in SETTINGS] == [spec.env.lower() for spec in SETTINGS]
    assert set(Settings.model_fields) == {spec.field for spec in SETTINGS}


def test_provider_lookups() -> None:
    settings = Settings.from_env({
        "OPENAI_API_URL": "http://127.0.0.1:5000", "OPENAI_API_KEY": "sk-test",
        "CLOUDFLARE_ACCOUNT_ID": "acc/1",
    })
    assert settings.provider_url("openai") == "http://127.0.0.1:5000"
    assert settings.provider_key("openai") == "sk-test"
    assert settings.provider_key("groq") is None
    assert settings.provider_url_params("cloudflare") == {"account_id": "acc/1"}
    assert settings.provider_url("cloudflare").endswith("/accounts/acc%2F1")
    unset = Settings()
    assert unset.provider_url_params("cloudflare") == {"account_id": None}
    assert unset.provider_url("cloudflare").endswith("/accounts/{account_id}")
    with pytest.raises(KeyError, match="mistral"):
        unset.provider_url("mistral")


def test_fixture_settings_cover_float_list_and_secret_path(
    load_generated: Callable[[Path], ModuleType],
) -> None:
    module = load_generated(FIXTURE / "expected" / "generated" / "settings.py")
    defaults = module.Settings()
    assert (defaults.app_ratio, defaults.app_tags, defaults.app_debug) == (0.5, ("a", "b"), False)
    settings = module.Settings.from_env({"APP_RATIO": "0.25", "APP_KEY_PATH": "/k/secret.pem",
                                         "APP_TIMEOUT": "2m", "ACME_TENANT": "t1"})
    assert (settings.app_ratio, settings.app_timeout) == (0.25, 120.0)
    assert "secret.pem" not in repr(settings)
    assert settings.provider_url("acme") == "https://api.acme.test/v2/t1"
    with pytest.raises(module.SettingsError, match=r"APP_RATIO: must be at most 1, got 1\.5"):
        module.Settings.from_env({"APP_RATIO": "1.5"})


def test_settings_error_from_one_message() -> None:
    error = SettingsError("SERVER_TLS_CERT_PATH and SERVER_TLS_KEY_PATH must be set together")
    assert error.problems == ("SERVER_TLS_CERT_PATH and SERVER_TLS_KEY_PATH must be set together",)
