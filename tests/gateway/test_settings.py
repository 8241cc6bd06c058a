"""Settings: a wrong config is refused with the file, the key and the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.app import create_app
from gateway.settings import ConfigError, load_city_config, load_settings
from tests.support import ROOT, make_settings


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_sample_config_is_valid():
    config = load_city_config(ROOT / "config.yaml")
    assert len(config.services) >= 8
    assert [d.number for d in config.districts] == list(range(1, 23))
    assert set(config.statuses) == {
        "received",
        "in_review",
        "awaiting_citizen",
        "awaiting_agency",
        "approved",
        "rejected",
        "closed",
    }


@pytest.mark.parametrize(
    "mutate, key, reason",
    [
        (lambda d: d["commands"].pop("help"), "commands", "commands missing"),
        (lambda d: d["commands"].update(fly={"fa": ["x"], "en": ["y"]}), "commands", "unknown"),
        (lambda d: d["statuses"].pop("closed"), "statuses", "exactly"),
        (
            lambda d: d["services"][0]["fields"][0].update(type="colour"),
            "services.0.fields.0.type",
            "Input should be",
        ),
        (lambda d: d["services"][1].update(number=1), "services", "number is repeated"),
        (
            lambda d: d["texts"]["help_status"].update(en="{kw} {code}"),
            "texts.help_status",
            "placeholders",
        ),
        (lambda d: d["texts"]["unknown"].pop("fa"), "texts.unknown.fa", "Field required"),
        (lambda d: d.update(default_language="de"), "default_language", "'fa' or 'en'"),
        (lambda d: d["services"][0].update(districts=[1, 99]), "services", "unknown districts"),
    ],
)
def test_bad_config_names_file_key_and_reason(tmp_path, mutate, key, reason):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as caught:
        load_city_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert key in message
    assert reason in message


def test_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("commands:\n  help: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: line \d+: not valid YAML"):
        load_city_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_city_config(tmp_path / "nope.yaml")


def test_bad_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("CITYGATE_PUBLIC_URL", "gateway.example")
    with pytest.raises(ConfigError, match="CITYGATE_PUBLIC_URL"):
        load_settings()
    monkeypatch.setenv("CITYGATE_PUBLIC_URL", "https://gateway.example/")
    monkeypatch.setenv("CITYGATE_ADMIN_TOKEN", "short")
    with pytest.raises(ConfigError, match=r"CITYGATE_ADMIN_TOKEN: .*16 characters"):
        load_settings()


def test_secrets_print_masked():
    settings = make_settings("sqlite+aiosqlite:///x.db")
    assert "test-auth-token" not in repr(settings)
    assert "admin-token" not in str(settings)


def test_refuses_to_start_without_token_unless_dev_mode(city_config):
    settings = make_settings("sqlite+aiosqlite:///x.db", twilio_auth_token=None)
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        create_app(settings, city_config)
    create_app(make_settings("sqlite+aiosqlite:///x.db", twilio_auth_token=None, dev_mode=True))


def test_cli_reports_config_error_without_traceback(tmp_path):
    path = _write(tmp_path, lambda d: d["statuses"].pop("closed"))
    env = {
        **os.environ,
        "CITYGATE_CONFIG": str(path),
        "CITYGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
    }
    result = subprocess.run(
        [sys.executable, "-c", "from gateway.cli import main; main()", "services"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "configuration refused" in result.stderr
    assert "statuses" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
