"""Imports run one way (docs/architecture.md): common/ imports none of BoatLoad's apps; the satellite
never imports the API's (boatload/, genisys/); connectors/ never imports the satellite; and no
import hides inside a function."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "boatload", "genisys", "connectors", "satellite", "console", "observe")
# Imports in a function that dodge no loop: Django's AppConfig.ready (the app registry must be
# ready first), gunicorn's post_fork hook (gevent must not load in the master before workers patch)
# and child_exit (prometheus_client picks its multiprocess mode when first imported, after the
# hooks set PROMETHEUS_MULTIPROC_DIR).
IMPORTS_THAT_WAIT = {("boatload/logins/apps.py", "ready"), ("observe/apps.py", "ready"),
                     ("boatload/gunicorn_conf.py", "post_fork"), ("boatload/gunicorn_conf.py", "child_exit")}


def modules_of(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" not in path.parts:
            yield ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def loaded_by(settings_module, modules):
    """The top-level packages of ours that importing `modules` (in a fresh interpreter, with the settings
    module `settings_module`, or none of ours) loads."""
    setup = (f"os.environ['DJANGO_SETTINGS_MODULE'] = {settings_module!r}\n" if settings_module else
             "from django.conf import settings; settings.configure()\n")
    script = (
        "import json, os, sys, django\n" + setup + "django.setup()\n"
        f"for name in {list(modules)!r}: __import__(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(PACKAGES)!r})))\n"
    )
    env = {"SATELLITE_STATE_DIR": "/tmp/boatload-import-check", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_satellite_loads_none_of_the_api():
    modules = [m for m in modules_of("satellite") if m != "satellite.__main__"] + ["satellite.urls"]
    assert loaded_by("satellite.settings", modules) <= {"satellite", "common", "connectors"}


@pytest.mark.parametrize("package, allowed", [("common", {"common"}),
                                              ("connectors", {"connectors", "common"})])
def test_shared_packages_load_no_app(package, allowed):
    modules = list(modules_of(package))
    assert modules and loaded_by(None, modules) <= allowed


def test_no_import_hides_in_a_function():
    hidden = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        str(path.relative_to(ROOT)), node.name) not in IMPORTS_THAT_WAIT:
                    hidden += [f"{path.relative_to(ROOT)}:{inner.lineno}" for inner in ast.walk(node)
                               if isinstance(inner, (ast.Import, ast.ImportFrom))]
    assert hidden == []


def test_the_api_settings_read_the_environment_and_import_no_app():
    """Settings read the environment; the apps read settings (boatload/settings.py imported genisys.config)."""
    tree = ast.parse((ROOT / "boatload" / "settings.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported & set(PACKAGES) <= {"common"}
