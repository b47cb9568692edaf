"""Outside dev a service refuses to start on a weak secret: libs/settings.py's validator, through each service.

The platform's own secrets (settings named `...secret`: intake's status token secret, web's session secret) need
32 bytes; credentials other parties issue (notify's provider token, `...password`) need only be non-empty where set.
The message names the setting, never its value.
"""

import os

import pytest
from pydantic import ValidationError

from libs.settings import DEV_SECRET, MIN_SECRET_BYTES, ServiceSettings
from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.router.settings import RouterSettings
from services.sla.settings import SlaSettings
from services.stats.settings import StatsSettings
from services.web.settings import WebSettings

STRONG = "k" * MIN_SECRET_BYTES
PROVIDER = "provider-issued-token"  # 21 bytes: a third party's length is its own
# Every secret each service's own settings hold, and a strong value for each.
OWN_SECRETS: dict[type[ServiceSettings], dict[str, str]] = {
    IntakeSettings: {"status_token_secret": STRONG},
    WebSettings: {"session_secret": STRONG},
    NotifySettings: {"provider_api_key_secret": PROVIDER},
    RouterSettings: {},
    SlaSettings: {},
    StatsSettings: {},
}


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith(("INTAKE_", "WEB_", "NOTIFY_", "ROUTER_", "SLA_", "STATS_")):
            monkeypatch.delenv(name)
    return monkeypatch


def settings(cls: type[ServiceSettings], environment: str, tmp_path, **values: str) -> ServiceSettings:
    return cls(environment=environment, api_keys_file=tmp_path / "api-keys.json", **values)


def test_the_platforms_own_secrets_are_the_ones_named_secret_less_the_providers():
    generated = {
        (cls.__name__, name)
        for cls in OWN_SECRETS
        for name in cls.model_fields
        if name.endswith("secret") and name not in cls.third_party_secrets
    }
    assert generated == {("IntakeSettings", "status_token_secret"), ("WebSettings", "session_secret")}


@pytest.mark.parametrize("environment", ["test", "prod"])
@pytest.mark.parametrize("cls", list(OWN_SECRETS), ids=lambda c: c.__name__)
def test_strong_secrets_start_every_service(clean_env, tmp_path, environment, cls):
    assert settings(cls, environment, tmp_path, **OWN_SECRETS[cls]).environment == environment


@pytest.mark.parametrize("environment", ["test", "prod"])
@pytest.mark.parametrize(
    ("cls", "name"), [(IntakeSettings, "status_token_secret"), (WebSettings, "session_secret")], ids=["intake", "web"]
)
@pytest.mark.parametrize(
    "weak",
    ["", "test-secret", "k" * (MIN_SECRET_BYTES - 1), "密" * 10, DEV_SECRET],
    ids=["empty", "short", "31-bytes", "30-bytes-of-10-characters", "demo"],
)
def test_a_short_or_empty_secret_of_the_platforms_own_is_refused_naming_it_never_showing_it(
    clean_env, tmp_path, environment, cls, name, weak
):
    with pytest.raises(ValidationError) as refused:
        settings(cls, environment, tmp_path, **{**OWN_SECRETS[cls], name: weak})
    message = str(refused.value)
    assert name in message and environment in message
    if weak:
        assert weak not in message, "the error shows the secret"
    assert "input_value" not in message, "pydantic's message would end with the environment's values"


def test_exactly_32_bytes_is_enough_and_counted_in_bytes_not_characters(clean_env, tmp_path):
    assert settings(IntakeSettings, "prod", tmp_path, status_token_secret="k" * 32).status_token_secret == "k" * 32
    multibyte = "密" * 11  # 33 bytes in UTF-8
    assert settings(WebSettings, "test", tmp_path, session_secret=multibyte).session_secret == multibyte


def test_a_secret_from_the_environment_is_checked_and_its_value_stays_out_of_the_error(clean_env, tmp_path):
    clean_env.setenv("INTAKE_ENVIRONMENT", "prod")
    clean_env.setenv("INTAKE_API_KEYS_FILE", str(tmp_path / "api-keys.json"))
    clean_env.setenv("INTAKE_STATUS_TOKEN_SECRET", "guessable-secret")
    with pytest.raises(ValidationError, match="status_token_secret is 16 bytes") as refused:
        IntakeSettings()
    assert "guessable-secret" not in str(refused.value)
    clean_env.setenv("INTAKE_STATUS_TOKEN_SECRET", "")
    with pytest.raises(ValidationError, match="status_token_secret is empty"):
        IntakeSettings()
    clean_env.setenv("INTAKE_STATUS_TOKEN_SECRET", STRONG)
    assert IntakeSettings().status_token_secret == STRONG


def test_each_refused_secret_is_named_in_one_message(clean_env, tmp_path):
    class TwoSecrets(ServiceSettings):
        service_name = "two-secrets"
        first_secret: str = ""
        second_secret: str = ""

    with pytest.raises(ValidationError) as refused:
        settings(TwoSecrets, "prod", tmp_path, first_secret="short", second_secret=STRONG)
    assert "first_secret is 5 bytes" in str(refused.value) and "second_secret" not in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        settings(TwoSecrets, "prod", tmp_path)
    assert "first_secret is empty" in str(refused.value) and "second_secret is empty" in str(refused.value)


@pytest.mark.parametrize("environment", ["test", "prod"])
def test_a_third_partys_credential_needs_only_to_be_set_and_non_empty(clean_env, tmp_path, environment):
    assert settings(NotifySettings, environment, tmp_path, provider_api_key_secret="x").provider_api_key == "x"
    with pytest.raises(ValidationError, match="provider_api_key_secret is set but empty"):
        settings(NotifySettings, environment, tmp_path, provider_api_key_secret="")
    with pytest.raises(ValidationError, match="provider_api_key_secret still has the development default"):
        settings(NotifySettings, environment, tmp_path)


def test_a_password_is_a_third_partys_credential(clean_env, tmp_path):
    class WithPassword(ServiceSettings):
        service_name = "with-password"
        smtp_password: str = ""

    assert settings(WithPassword, "prod", tmp_path).smtp_password == "", "not set: not used"
    assert settings(WithPassword, "prod", tmp_path, smtp_password="short").smtp_password == "short"
    with pytest.raises(ValidationError, match="smtp_password is set but empty"):
        settings(WithPassword, "prod", tmp_path, smtp_password="")


def test_dev_allows_the_demo_secrets(clean_env):
    for cls in OWN_SECRETS:
        dev = cls()
        assert dev.environment == "dev"
    assert IntakeSettings().status_token_secret == DEV_SECRET
    assert WebSettings().session_secret == DEV_SECRET
    assert IntakeSettings(status_token_secret="").status_token_secret == "", "dev takes anything"
