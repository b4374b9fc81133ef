"""The production smoke test behind scripts/production-smoke.

From nothing to a delivered file, the way a server runs the portal: a fresh PostgreSQL database
and data folder, an env file made from deploy/.env.example with DEBUG off, migrate,
compilemessages, collectstatic and check --deploy, then web and workers started by honcho from
deploy/Procfile (and beside them the local Serviceplatform simulator, which production does not
run). Static files and security headers are checked, a file is queued through the API and
downloaded on the receiving side, and everything is stopped and checked gone. A failure prints
the processes' output and exits 1; the database and the folder go either way (--keep keeps the
folder, with the logs).

The web server is reached as the TLS proxy reaches it: plain HTTP on loopback, with
X-Forwarded-Proto: https and X-Forwarded-For, as deploy/README.md has the proxy set them.
"""

import argparse
import contextlib
import gzip
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from cryptography.fernet import Fernet
from honcho.environ import parse as parse_env_file
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / ".env.example"
PROCFILE = ROOT / "deploy" / "Procfile"
BIN = Path(sys.executable).parent
# The server's maintenance database, where the run's own database is made and dropped.
POSTGRES = os.environ.get(
    "PRODUCTION_SMOKE_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Set in every process of the run, so any left behind can be found by it.
MARK = "FDD_PRODUCTION_SMOKE_RUN"
CLIENT = "203.0.113.7"  # the browser's address, as the proxy appends it (TEST-NET-3)
STARTED = time.monotonic()


class Failed(Exception):
    """A check did not hold; the message says which."""


def say(message: str) -> None:
    print(f"[smoke {time.monotonic() - STARTED:5.1f}s] {message}", flush=True)


def check(condition: object, message: str) -> None:
    if not condition:
        raise Failed(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _interrupted(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


class Run:
    """One run's database, folder, processes and logs, and their removal."""

    def __init__(self, keep: bool):
        self.keep = keep
        self.id = secrets.token_hex(6)
        self.folder = Path(tempfile.mkdtemp(prefix=f"fdd-smoke-{self.id}-"))
        self.database = f"fdd_smoke_{self.id}"
        self.web_port = free_port()
        self.simulator_port = free_port()
        while self.simulator_port == self.web_port:
            self.simulator_port = free_port()
        self.env_file = self.folder / "env"
        self.logs: dict[str, Path] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.database_made = False
        self.database_url = ""
        self.records: dict = {}

    # --- the database and the environment ---------------------------------------------------

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(POSTGRES, autocommit=True, connect_timeout=10)

    def make_database(self) -> None:
        with self.admin() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        self.database_made = True
        self.database_url = urlsplit(POSTGRES)._replace(path=f"/{self.database}").geturl()

    def database_connections(self) -> int:
        with self.admin() as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.database]
            ).fetchone()
        return row[0]

    def drop_database(self, force: bool) -> None:
        statement = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if force else "DROP DATABASE {}"
        with self.admin() as connection:
            connection.execute(sql.SQL(statement).format(sql.Identifier(self.database)))
        self.database_made = False

    def write_env_file(self) -> None:
        """deploy/.env.example with this run's production values in place of its lines; a
        value the example has no line for, or a placeholder left unset, fails the run."""
        origin = f"https://127.0.0.1:{self.web_port}"
        values = {
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "SFTP_KEY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "127.0.0.1",
            "CSRF_TRUSTED_ORIGINS": origin,
            "PORTAL_BASE_URL": origin,
            "DATABASE_URL": self.database_url,
            "PORTAL_DATA_DIR": str(self.folder / "data"),
            # Outside the checkout, which other work may share.
            "STATIC_ROOT": str(self.folder / "static"),
            # Plain HTTP between proxy and gunicorn, as in production: HTTPS is the proxy's.
            "BEHIND_TLS_PROXY": "true",
            "GUNICORN_BIND": f"127.0.0.1:{self.web_port}",
            "GUNICORN_WORKERS": "2",
            # The default SFTP_ALLOWED_HOSTS lets the portal reach SIMULATOR_HOST:SIMULATOR_PORT.
            "SIMULATOR_PORT": str(self.simulator_port),
        }
        lines, unused = [], dict(values)
        for line in EXAMPLE.read_text().splitlines():
            match = re.match(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", line)
            if match and match[1] in unused:
                line = f"{match[1]}={unused.pop(match[1])}"
            elif match and not line.startswith("#"):
                raise Failed(f"deploy/.env.example sets {match[1]}, which the run does not")
            lines.append(line)
        check(not unused, f"deploy/.env.example has no line for {', '.join(unused)}")
        self.env_file.write_text("\n".join(lines) + "\n")
        self.env_file.chmod(0o600)

    def environment(self, *, with_settings: bool) -> dict[str, str]:
        """The caller's environment without any of the portal's settings (a developer's DEBUG or
        a CI's DATABASE_URL must not leak in), the virtualenv first in PATH, and the mark; with
        the env file's settings, for the commands the run starts itself."""
        names = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", EXAMPLE.read_text(), re.MULTILINE))
        names.add("DJANGO_SETTINGS_MODULE")
        environment = {k: v for k, v in os.environ.items() if k not in names}
        environment["PATH"] = f"{BIN}{os.pathsep}{environment.get('PATH', '')}"
        environment["PYTHONUNBUFFERED"] = "1"
        environment[MARK] = self.id
        if with_settings:
            # honcho's own reader, so these commands see what the processes honcho starts see.
            environment.update(parse_env_file(self.env_file.read_text()))
        return environment

    # --- processes ----------------------------------------------------------------------------

    def start(self, name: str, command: list[str], *, with_settings: bool) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        self.logs[name] = log
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - the portal's own commands
                command,
                cwd=ROOT,
                env=self.environment(with_settings=with_settings),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def finish(self, name: str, timeout: float) -> None:
        process = self.processes[name]
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{name} did not finish within {timeout:.0f} s") from None
        check(code == 0, f"{name} exited with {code}")

    def manage(self, name: str, *arguments: str, timeout: float = 120) -> None:
        self.start(name, [str(BIN / "python"), "manage.py", *arguments], with_settings=True)
        self.finish(name, timeout)

    def alive(self) -> None:
        for name in ("honcho", "simulator"):
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise Failed(f"{name} stopped by itself (exit {process.returncode})")

    def marked_processes(self) -> list[int]:
        """Every process carrying this run's mark, wherever it was reparented to."""
        wanted = f"{MARK}={self.id}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
        return found

    def stop(self, name: str, timeout: float) -> int:
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{name} did not stop within {timeout:.0f} s of SIGTERM") from None

    # --- HTTP, as the TLS proxy speaks it -----------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        proxied: bool = True,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        sent = dict(headers or {})
        if proxied:
            sent |= {"X-Forwarded-Proto": "https", "X-Forwarded-For": CLIENT}
        connection = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def api(
        self, method: str, path: str, token: str, **options
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        headers = {"Authorization": f"Bearer {token}", **options.pop("headers", {})}
        return self.request(method, path, headers=headers, **options)

    # --- the end ------------------------------------------------------------------------------

    def print_logs(self) -> None:
        for name, log in self.logs.items():
            text = log.read_text(errors="replace") if log.exists() else ""
            lines = text.splitlines()
            print(f"\n===== {name} ({log}), last {min(len(lines), 300)} lines =====")
            print("\n".join(lines[-300:]) or "(no output)")

    def clean_up(self) -> None:
        """Whatever is left, after a failure too: processes, database, folder. A second Ctrl-C
        would leave half of it, so it runs to the end (its waits are bounded)."""
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        for pid in self.marked_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.database_made:
            try:
                self.drop_database(force=True)
            except psycopg.Error as error:
                print(f"could not drop the database {self.database}: {error}", file=sys.stderr)
        if self.keep:
            print(f"kept {self.folder}")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)


# --- the steps --------------------------------------------------------------------------------


def prepare(run: Run) -> None:
    run.make_database()
    run.write_env_file()
    say(f"database {run.database}, folder {run.folder}, web :{run.web_port}")
    # Its minute or so of compressing is the longest step and needs no database: it runs while
    # the others do. The web process needs its manifest before it starts.
    run.start(
        "collectstatic",
        [str(BIN / "python"), "manage.py", "collectstatic", "--no-input", "-v0"],
        with_settings=True,
    )
    run.manage("migrate", "migrate", "--no-input", "-v0")
    # As the Makefile: the checkout's virtualenv and node_modules hold catalogues of their own.
    run.manage(
        "compilemessages",
        "compilemessages",
        "--ignore",
        ".venv/*",
        "--ignore",
        "node_modules/*",
        "-v0",
    )
    # WARNING too: production settings with nothing to excuse. The TLS proxy is why plain HTTP
    # passes: SECURE_SSL_REDIRECT and HSTS stay on.
    run.manage("check", "check", "--deploy", "--fail-level", "WARNING")
    # The tokens go to a file of the run's own, not into a log that a failure prints.
    records = run.folder / "records.json"
    run.start(
        "setup",
        [str(BIN / "python"), "-m", "scripts.production_smoke_setup", str(records)],
        with_settings=True,
    )
    run.finish("setup", 120)
    run.records = json.loads(records.read_text())
    say(f"migrated, checked (--deploy), route {run.records['route']} ready with two tokens")
    run.finish("collectstatic", 300)
    say("static files collected")


def start_processes(run: Run) -> None:
    run.start(
        "simulator",
        [str(BIN / "python"), "manage.py", "serviceplatform"],
        with_settings=True,
    )
    run.start(
        "honcho",
        [
            str(BIN / "honcho"),
            "--no-colour",
            "-f",
            str(PROCFILE.relative_to(ROOT)),
            "-e",
            str(run.env_file),
            "start",
            "web",
            "workers",
        ],
        with_settings=False,
    )
    # /healthz answers 200 once the database, a worker cluster's heartbeat and the simulator do.
    deadline = time.monotonic() + 90
    status = None
    while time.monotonic() < deadline:
        run.alive()
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, _ = run.request("GET", "/healthz")
            if status == 200:
                say("web, workers and simulator up: /healthz 200")
                return
        time.sleep(0.5)
    raise Failed(f"/healthz did not answer 200 within 90 s (last: {status})")


def check_pages(run: Run) -> None:
    # A load balancer's probe comes straight to gunicorn, in plain HTTP without the proxy.
    for probe in ("/livez", "/readyz", "/healthz"):
        status, _, _ = run.request("GET", probe, proxied=False)
        check(status == 200, f"{probe} answered a plain-HTTP probe with {status}")
    status, headers, _ = run.request("GET", "/login/", proxied=False)
    check(status == 301, f"plain HTTP without the proxy's header answered {status}, not 301")
    location = headers.get("Location", "")
    check(location == f"https://127.0.0.1:{run.web_port}/login/", f"redirected to {location}")

    status, headers, body = run.request("GET", "/login/")
    check(status == 200, f"/login/ answered {status}")
    expected = {
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    for name, value in expected.items():
        check(headers.get(name) == value, f"{name}: {headers.get(name)!r}, not {value!r}")
    policy = headers.get("Content-Security-Policy", "")
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
        check(directive in policy, f"Content-Security-Policy lacks {directive}: {policy!r}")
    check("camera=()" in headers.get("Permissions-Policy", ""), "no Permissions-Policy")
    cookies = [c.lower() for c in headers.get_all("Set-Cookie") or []]
    csrf = [c for c in cookies if c.startswith("csrftoken=")]
    check(csrf and "secure" in csrf[0] and "httponly" in csrf[0], f"CSRF cookie: {csrf}")
    say("HTTPS redirect and security headers in place")

    # The page links the stylesheet by its hashed name (the manifest), which WhiteNoise serves
    # compressed and cacheable for ever; its content is what collectstatic wrote.
    found = re.search(rb'/static/(portal/portal\.[0-9a-f]{12}\.css)"', body)
    check(found, "the login page links no hashed portal.css")
    name = found[1].decode()
    status, headers, content = run.request(
        "GET", f"/static/{name}", headers={"Accept-Encoding": "gzip"}
    )
    check(status == 200, f"/static/{name} answered {status}")
    cache = headers.get("Cache-Control", "")
    check("immutable" in cache and "max-age=315360000" in cache, f"Cache-Control: {cache!r}")
    check(headers.get("Content-Encoding") == "gzip", "the stylesheet came uncompressed")
    collected = (run.folder / "static" / name).read_bytes()
    check(gzip.decompress(content) == collected, "the stylesheet served is not the one collected")
    say(f"/static/{name}: 200, gzip, {cache}")

    status, _, body = run.request("GET", f"/no-such-page-{run.id}/")
    check(status == 404, f"an unknown page answered {status}")
    check(b"URLconf" not in body and b"Traceback" not in body, "the 404 page shows debug output")


def send_a_file(run: Run) -> None:
    sender, receiver = run.records["sender_token"], run.records["receiver_token"]
    rows = [f"{n};{secrets.token_hex(8)};røgtest" for n in range(4000)]
    content = ("id;nøgle;kilde\n" + "\n".join(rows) + "\n").encode()
    digest = hashlib.sha256(content).hexdigest()
    boundary = uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="borgere-smoke.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {
        "Idempotency-Key": str(uuid.uuid4()),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    path = f"/api/v1/routes/{run.records['route']}/transfers"
    status, _, answer = run.api("POST", path, sender, headers=headers, body=body)
    check(status == 201, f"queueing the file answered {status}: {answer[:500]!r}")
    transfer = json.loads(answer)
    check(transfer["sha256"] == digest, "the queued file's SHA-256 differs from the one sent")
    status, replay_headers, again = run.api("POST", path, sender, headers=headers, body=body)
    check(
        status == 200 and json.loads(again)["id"] == transfer["id"],
        f"the same Idempotency-Key answered {status}",
    )
    check(replay_headers.get("Idempotent-Replayed") == "true", "no Idempotent-Replayed header")
    say(f"transfer {transfer['id']} queued through the API ({len(content)} bytes)")

    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline:
        run.alive()
        status, _, answer = run.api("GET", f"/api/v1/transfers/{transfer['id']}", sender)
        check(status == 200, f"reading the transfer answered {status}")
        current = json.loads(answer)
        state = current["state"]
        check(state not in ("failed", "cancelled"), f"the transfer {state}: {current}")
        if state == "delivered":
            break
        time.sleep(0.5)
    check(state == "delivered", f"the transfer is {state} after 60 s, not delivered")
    say("delivered")

    deadline = time.monotonic() + 60
    received = None
    while received is None and time.monotonic() < deadline:
        run.alive()
        status, _, answer = run.api("GET", "/api/v1/received-files", receiver)
        check(status == 200, f"listing received files answered {status}")
        received = next((f for f in json.loads(answer)["items"] if f["sha256"] == digest), None)
        if received is None:
            time.sleep(0.5)
    check(received, "the receiving side did not fetch the file")
    status, headers, downloaded = run.api(
        "GET", f"/api/v1/received-files/{received['id']}/content", receiver
    )
    check(status == 200, f"downloading the received file answered {status}")
    check(hashlib.sha256(downloaded).hexdigest() == digest, "the received file differs")
    check(headers.get("X-Content-SHA256") == digest, "X-Content-SHA256 differs")
    status, _, answer = run.api(
        "POST", f"/api/v1/received-files/{received['id']}/acknowledge", receiver
    )
    check(status == 200 and json.loads(answer)["acknowledged_at"], "acknowledging failed")
    say(f"fetched by the receiver as {received['file_name']}, downloaded, SHA-256 equal")


def stop_everything(run: Run) -> None:
    # honcho passes SIGTERM on to each process's group and waits for them.
    code = run.stop("honcho", 30)
    check(code in (0, 143), f"honcho exited with {code}")
    # gunicorn's access log went to stdout with the address the proxy passed on.
    access = f'"{CLIENT}" '
    check(
        any(access in line and '"GET /login/ ' in line for line in run.logs["honcho"].open()),
        "no access log line for GET /login/ with the client's forwarded address",
    )
    run.stop("simulator", 15)
    deadline = time.monotonic() + 10
    while (left := run.marked_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    check(not left, f"processes of the run still running: {left}")
    for port in (run.web_port, run.simulator_port):
        check(not listening(port), f"something still listens on {port}")
    deadline = time.monotonic() + 10
    while (connections := run.database_connections()) and time.monotonic() < deadline:
        time.sleep(0.2)
    check(not connections, f"{connections} connections to the database are still open")
    run.drop_database(force=False)
    say(f"stopped (honcho {code}); no process, port or connection left; database dropped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the run's folder and logs")
    keep = parser.parse_args().keep
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _interrupted)
    run = Run(keep)
    try:
        prepare(run)
        start_processes(run)
        check_pages(run)
        send_a_file(run)
        stop_everything(run)
    except (Exception, KeyboardInterrupt) as error:
        run.print_logs()
        print(f"\nPRODUCTION SMOKE TEST FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        run.clean_up()
    say("production smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
