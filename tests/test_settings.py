import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from slmlab.env import env_bool, env_int, env_list, env_path

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_env_bool_fails_loudly_on_nonsense(monkeypatch, value):
    monkeypatch.setenv("X_FLAG", value)
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG", False)


def test_env_bool_reads_the_usual_spellings(monkeypatch):
    monkeypatch.setenv("X_FLAG", "On")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "0")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.delenv("X_FLAG")
    assert env_bool("X_FLAG", True) is True


def test_env_int_checks_type_and_minimum(monkeypatch):
    monkeypatch.setenv("X_N", "ten")
    with pytest.raises(ImproperlyConfigured, match="expected an integer"):
        env_int("X_N", 1)
    monkeypatch.setenv("X_N", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("X_N", 1, minimum=1)
    monkeypatch.setenv("X_N", "7")
    assert env_int("X_N", 1, minimum=1) == 7


def test_env_list_and_path(monkeypatch, tmp_path):
    monkeypatch.setenv("X_HOSTS", "a.example, b.example,,")
    assert env_list("X_HOSTS", []) == ["a.example", "b.example"]
    monkeypatch.setenv("X_DIR", "")
    with pytest.raises(ImproperlyConfigured, match="empty"):
        env_path("X_DIR", tmp_path)


def _manage(args: list[str], **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REDIS_URL"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, "DJANGO_SETTINGS_MODULE": "slmlab.settings", **env},
    )


def test_the_production_settings_pass_the_deploy_check(tmp_path):
    production = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    production.pop("SECRET_KEY")  # the example's placeholder is deliberately weak
    result = _manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        **production,
        SECRET_KEY="k3y-" + "".join(chr(65 + i % 50) for i in range(70)),
        REDIS_URL="redis://127.0.0.1:6379/0",
        SLMLAB_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_check_demands_redis_and_a_secret_key(tmp_path):
    result = _manage(["check", "--deploy"], SLMLAB_DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "slmlab.E001" in result.stderr and "slmlab.E002" in result.stderr


def test_a_bad_setting_stops_start_up_with_its_name(tmp_path):
    result = _manage(["check"], DEBUG="perhaps", SLMLAB_DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DEBUG='perhaps'" in result.stderr
