"""The production kit in deploy/ stays complete and consistent with the portal it runs.

deploy/.env.example names every setting the portal reads from the environment, and nothing
else; the systemd units parse and agree with each other, the Procfile and gunicorn's settings;
every process names a command that exists. scripts/production-smoke runs the kit for real.
"""

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands
from honcho.environ import parse as honcho_parse

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
EXAMPLE = DEPLOY / ".env.example"
UNITS = DEPLOY / "systemd"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
INSTALL_ROOT = "/opt/fdd-portal"
SERVICES = {
    "web": "fdd-portal-web.service",
    "workers": "fdd-portal-workers.service",
    "watch": "fdd-portal-watch.service",
}
# What the three units must share; the rest of [Service] is each one's own.
OWN_SERVICE_KEYS = {"Type", "ExecStart", "ExecReload", "TimeoutStopSec"}
SETTING_LINE = re.compile(r"^#?([A-Z][A-Z0-9_]*)=(.*)$")


# --- What the portal reads ----------------------------------------------------------------------


def runtime_sources() -> list[Path]:
    """The portal's own code: its packages and manage.py, and gunicorn's settings; not the tests
    or benchmarks, whose variables are theirs."""
    packages = [
        path
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file() and path.name not in {"tests", "bench"}
    ]
    files = [path for package in packages for path in package.rglob("*.py")]
    return sorted([*files, *ROOT.glob("*.py"), *DEPLOY.glob("*.py")])


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_os_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _reads_a_variable(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id.startswith("env_")
    if not isinstance(func, ast.Attribute):
        return False
    return (
        func.attr.startswith("env_")
        or func.attr == "getenv"
        or (func.attr == "get" and _is_os_environ(func.value))
    )


def variables_read(tree: ast.AST) -> set[str]:
    """Names passed as literals to portal.env's readers (env_str, env_int, ... any env_*),
    to os.environ.get, os.getenv and os.environ[...]. setdefault is a write, not a setting."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _reads_a_variable(node):
            variable = _literal(node.args[0])
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and _is_os_environ(node.value)
        ):
            variable = _literal(node.slice)
        else:
            continue
        if variable:
            found.add(variable)
    return found


def portal_variables() -> dict[str, Path]:
    """Each variable read, with the first file that reads it."""
    found = {}
    for path in runtime_sources():
        for variable in variables_read(ast.parse(path.read_text(), filename=str(path))):
            found.setdefault(variable, path.relative_to(ROOT))
    return found


def example_settings() -> list[tuple[str, str, bool]]:
    """(name, value, commented) for each setting line of deploy/.env.example."""
    settings = []
    for line in EXAMPLE.read_text().splitlines():
        if match := SETTING_LINE.match(line):
            settings.append((match[1], match[2], line.startswith("#")))
    return settings


def test_the_scan_finds_settings_read_every_way():
    variables = portal_variables()
    # env_str in settings.py (also spread over lines), DATABASE_URL and REDIS_URL, the newer
    # readers, and gunicorn's os.environ.get.
    for name in (
        "SECRET_KEY",
        "SFTP_KEY_ENCRYPTION_KEY",
        "SFTP_ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "DEBUG",
        "Q_WORKERS",
        "ALLOWED_HOSTS",
        "PORTAL_DATA_DIR",
        "GUNICORN_BIND",
        "FORWARDED_ALLOW_IPS",
    ):
        assert name in variables, name
    assert "DJANGO_SETTINGS_MODULE" not in variables  # only ever set as a default


def test_variables_read_counts_reads_not_writes():
    tree = ast.parse(
        "import os\n"
        "a = env_str('A')\n"
        "b = env_choice('B', 'x', ('x',))\n"
        "c = os.environ.get('C')\n"
        "d = os.getenv('D', '1')\n"
        "e = os.environ['E']\n"
        "os.environ.setdefault('F', 'x')\n"
        "os.environ['G'] = 'x'\n"
        "h = settings.get('H')\n"
        "i = env_str(name)\n"
    )
    assert variables_read(tree) == {"A", "B", "C", "D", "E"}


def test_env_example_names_every_setting_and_only_those():
    read = portal_variables()
    listed = [name for name, _value, _commented in example_settings()]
    missing = sorted(f"{name} (read in {read[name]})" for name in set(read) - set(listed))
    assert not missing, f"deploy/.env.example lacks {', '.join(missing)}"
    unknown = sorted(set(listed) - set(read))
    assert not unknown, f"deploy/.env.example lists {', '.join(unknown)}, which nothing reads"
    twice = sorted({name for name in listed if listed.count(name) > 1})
    assert not twice, f"deploy/.env.example lists {', '.join(twice)} more than once"


def test_every_setting_in_the_example_says_what_it_is():
    lines = EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if SETTING_LINE.match(line):
            above = lines[number - 1] if number else ""
            assert above.startswith("# "), f"no comment above line {number + 1}: {line}"


def test_example_values_read_the_same_in_systemd_honcho_and_a_shell():
    """Bare values only: quotes, spaces, '#', '$' and backslashes are read differently by
    systemd's EnvironmentFile=, honcho's -e and a shell's `.`."""
    text = "\n".join(f"{name}={value}" for name, value, _ in example_settings() if value)
    assert honcho_parse(text) == {name: value for name, value, _ in example_settings() if value}
    for name, value, _commented in example_settings():
        assert not re.search(r"[\s'\"#$\\`]", value), f"{name}={value}"


# --- systemd units ------------------------------------------------------------------------------


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value): a key may come more than once."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{name}: continued lines are not expected"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{name}: {line} comes before any section"
        key, separator, value = line.partition("=")
        assert separator, f"{name}: {line} is not KEY=VALUE"
        current.append((key.strip(), value.strip()))
    return sections


def values(sections: dict, section: str, key: str) -> list[str]:
    return [value for k, value in sections.get(section, []) if k == key]


def one(sections: dict, section: str, key: str) -> str:
    found = values(sections, section, key)
    assert len(found) == 1, f"[{section}] {key}= given {len(found)} times"
    return found[0]


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match[1]) * (60 if match[2] == "min" else 1)


def gunicorn_settings(environment: dict[str, str]) -> dict:
    """deploy/gunicorn.conf.py run as gunicorn runs it, under the given environment alone."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment)
    try:
        namespace: dict = {}
        exec(compile(GUNICORN_CONF.read_text(), str(GUNICORN_CONF), "exec"), namespace)  # noqa: S102
        return namespace
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_kit_has_its_files():
    for name in [*SERVICES.values(), "fdd-portal.target"]:
        assert (UNITS / name).is_file(), name
    assert (DEPLOY / "Procfile").is_file()
    assert (DEPLOY / "README.md").is_file()
    assert os.access(ROOT / "scripts" / "production-smoke", os.X_OK)


@pytest.mark.parametrize("process", SERVICES)
def test_each_service_runs_as_the_portal_user_with_the_shared_settings(process):
    sections = unit(SERVICES[process])
    assert set(sections) == {"Unit", "Service", "Install"}
    assert one(sections, "Service", "User") == "fdd"
    assert one(sections, "Service", "EnvironmentFile") == "/etc/fdd-portal/env"
    assert one(sections, "Service", "WorkingDirectory") == INSTALL_ROOT
    assert one(sections, "Service", "Restart") == "on-failure"
    assert seconds(one(sections, "Service", "RestartSec")) >= 5
    # Signals go to the main process, which stops its children in order.
    assert one(sections, "Service", "KillMode") == "mixed"
    assert one(sections, "Service", "NoNewPrivileges") == "yes"
    assert one(sections, "Service", "ProtectSystem") == "strict"
    assert one(sections, "Service", "PrivateTmp") == "yes"
    assert one(sections, "Unit", "PartOf") == "fdd-portal.target"
    assert one(sections, "Install", "WantedBy") == "fdd-portal.target"
    data_dir = dict((n, v) for n, v, _ in example_settings())["PORTAL_DATA_DIR"]
    assert values(sections, "Service", "ReadWritePaths") == [data_dir]


def test_the_three_services_share_user_settings_and_hardening():
    shared = {
        name: sorted(
            (key, value) for key, value in unit(name)["Service"] if key not in OWN_SERVICE_KEYS
        )
        for name in SERVICES.values()
    }
    web = shared[SERVICES["web"]]
    for name, settings in shared.items():
        assert settings == web, f"{name} differs from the web unit: {set(settings) ^ set(web)}"


def test_the_target_starts_with_the_machine():
    sections = unit("fdd-portal.target")
    assert one(sections, "Install", "WantedBy") == "multi-user.target"


def test_the_web_unit_outwaits_gunicorns_graceful_stop():
    web = unit(SERVICES["web"])
    graceful = gunicorn_settings({})["graceful_timeout"]
    assert seconds(one(web, "Service", "TimeoutStopSec")) > graceful
    assert one(web, "Service", "Type") == "notify"  # gunicorn reports READY=1


def test_the_workers_get_time_to_finish_their_tasks():
    workers = unit(SERVICES["workers"])
    # SIGTERM to qcluster's main process: django-q2's sentinel and workers die at once on it.
    assert one(workers, "Service", "KillSignal") == "SIGTERM"
    assert seconds(one(workers, "Service", "TimeoutStopSec")) >= 60


@pytest.mark.system
@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_accepts_the_units(tmp_path):
    """systemd's own check, on copies that point at this checkout and its Python instead of
    /opt/fdd-portal (verify wants the programs to exist). It warns about an unknown or
    misspelt key without failing, so any output fails the test."""
    for path in UNITS.iterdir():
        text = path.read_text()
        text = text.replace(f"{INSTALL_ROOT}/.venv/bin/", f"{Path(sys.executable).parent}/")
        (tmp_path / path.name).write_text(text.replace(INSTALL_ROOT, str(ROOT)))
    names = sorted(path.name for path in tmp_path.iterdir())
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output


# --- The Procfile and what it runs --------------------------------------------------------------


def procfile() -> dict[str, str]:
    """Process name → command, without the `exec` that hands the shell over to it."""
    processes = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line):
            processes[match[1]] = match[2].strip().removeprefix("exec ")
    return processes


def test_each_process_replaces_the_managers_shell():
    """Else the manager watches and signals the shell, which dies at once on SIGTERM and
    leaves the process behind to stop (or not) unwatched."""
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if re.match(r"^[A-Za-z0-9_-]+:", line):
            assert line.split(":", 1)[1].strip().startswith("exec "), line


def test_the_procfile_runs_web_workers_and_watch():
    assert set(procfile()) == set(SERVICES)


@pytest.mark.parametrize("process", SERVICES)
def test_the_procfile_and_the_unit_run_the_same_command(process):
    exec_start = one(unit(SERVICES[process]), "Service", "ExecStart")
    in_checkout = exec_start.replace(f"{INSTALL_ROOT}/.venv/bin/", "").replace(
        f"{INSTALL_ROOT}/", ""
    )
    assert in_checkout == procfile()[process]


@pytest.mark.parametrize("process", SERVICES)
def test_every_process_names_a_command_that_exists(process):
    program, *arguments = shlex.split(procfile()[process])
    assert shutil.which(program, path=str(Path(sys.executable).parent)), program
    if program == "python":
        script, command = arguments[:2]
        assert (ROOT / script).is_file()
        assert command in get_commands(), f"manage.py has no command {command!r}"
    else:
        assert program == "gunicorn"
        config = arguments[arguments.index("--config") + 1]
        assert (ROOT / config).is_file()
        module = arguments[-1].replace(".", "/") + ".py"
        assert (ROOT / module).is_file(), module


# --- gunicorn's settings ------------------------------------------------------------------------


def test_gunicorn_defaults_are_the_documented_ones():
    settings = gunicorn_settings({"PORT": "5000"})  # as a Procfile manager sets it
    assert settings["bind"] == ["127.0.0.1:8000"]
    assert settings["worker_class"] == "gthread"
    assert settings["threads"] == 4
    assert settings["timeout"] == 120
    assert settings["workers"] >= 2
    assert settings["accesslog"] == "-"
    assert settings["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert settings["control_socket_disable"] is True


def test_gunicorn_takes_its_settings_from_the_environment():
    settings = gunicorn_settings(
        {
            "GUNICORN_BIND": "127.0.0.1:9000, [::1]:9000",
            "GUNICORN_WORKERS": "3",
            "GUNICORN_THREADS": "8",
            "GUNICORN_TIMEOUT": "300",
            "GUNICORN_GRACEFUL_TIMEOUT": "30",
            "FORWARDED_ALLOW_IPS": "10.0.0.5",
        }
    )
    assert settings["bind"] == ["127.0.0.1:9000", "[::1]:9000"]
    assert (settings["workers"], settings["threads"]) == (3, 8)
    assert (settings["timeout"], settings["graceful_timeout"]) == (300, 30)
    assert settings["forwarded_allow_ips"] == "10.0.0.5"


@pytest.mark.parametrize("value", ["many", "0"])
def test_a_malformed_gunicorn_setting_stops_it_naming_the_variable(value):
    with pytest.raises(SystemExit, match="GUNICORN_WORKERS"):
        gunicorn_settings({"GUNICORN_WORKERS": value})
