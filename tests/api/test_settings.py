"""Settings of both roles, checked in fresh interpreters so the environment really decides."""
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from common.env import env_bool, env_duration, env_int, env_str, parse_duration
from tests.conftest import ROOT


def run_python(code, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOATLOAD_", "DATABASE_URL", "SATELLITE_"))}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True,
                          text=True, timeout=60)


def test_it_refuses_to_start_in_production_without_a_secret_key():
    result = run_python("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='boatload.settings'; django.setup()")
    assert result.returncode != 0
    assert "BOATLOAD_SECRET_KEY" in result.stderr and "ImproperlyConfigured" in result.stderr


def test_it_uses_sqlite_under_var_without_database_url(tmp_path):
    result = run_python("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='boatload.settings'; django.setup();"
                        "from django.conf import settings; d=settings.DATABASES['default'];"
                        "print(d['ENGINE'], d['NAME'])",
                        BOATLOAD_SECRET_KEY="x", BOATLOAD_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", str(tmp_path / "boatload.sqlite3")]


def test_it_uses_postgres_from_database_url():
    result = run_python("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='boatload.settings'; django.setup();"
                        "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])",
                        BOATLOAD_SECRET_KEY="x", DATABASE_URL="postgres://u:p@127.0.0.1:5432/db")
    assert result.stdout.strip() == "django.db.backends.postgresql", result.stderr


def test_the_satellite_has_no_database_and_reads_its_port():
    result = run_python("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='satellite.settings'; django.setup();"
                        "from django.conf import settings; print(settings.DATABASES, settings.PORT, settings.BIND)",
                        SATELLITE_PORT="7999")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["{}", "7999", "127.0.0.1"]


def test_tests_run_against_postgres(settings):
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def test_secrets_can_come_from_a_file(tmp_path, monkeypatch):
    (tmp_path / "secret").write_text("from-a-file\n")
    monkeypatch.delenv("BOATLOAD_TEST_SECRET", raising=False)
    monkeypatch.setenv("BOATLOAD_TEST_SECRET_FILE", str(tmp_path / "secret"))
    assert env_str("BOATLOAD_TEST_SECRET") == "from-a-file"


def test_typed_helpers_name_the_bad_variable(monkeypatch):
    monkeypatch.setenv("BOATLOAD_X", "twelve")
    with pytest.raises(ImproperlyConfigured, match="BOATLOAD_X"):
        env_int("BOATLOAD_X", 1)
    with pytest.raises(ImproperlyConfigured, match="BOATLOAD_X"):
        env_bool("BOATLOAD_X")
    with pytest.raises(ImproperlyConfigured, match="BOATLOAD_X"):
        env_duration("BOATLOAD_X", 1)
    with pytest.raises(ImproperlyConfigured, match="must be set"):
        env_str("BOATLOAD_UNSET_THING", required=True)


def test_durations_accept_seconds_and_minutes():
    assert parse_duration("15s") == 15
    assert parse_duration("1m") == 60
    assert parse_duration("250ms") == 0.25
    assert parse_duration("7") == 7
