#!/usr/bin/env python3
"""The README's first command, as a newcomer runs it, on a fresh clone of what is committed.

    scripts/first_run_check.py [--keep]

Clones the repository's HEAD into a temporary folder (no .venv, node_modules or data), runs
`make run` there in the background, waits for /healthz, logs in as the demo user `nordlys`, sends
a file on the Aarhus route through *Send en fil* and waits until the transfer page shows it
delivered and `fjordsoft` finds it among its received files; then stops `make run` as Ctrl-C
would and checks that none of its processes is left and its ports are free. Exit 0 when all of
that held; otherwise 1, with the end of `make run`'s output. Standard library only: it runs
before anything is installed.
"""

import argparse
import http.cookiejar
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8000"
PORTS = (8000, 2222)  # the web server and the local Serviceplatform that `make run` starts
PASSWORD = "fdd-demo-2026"
DEMO_FILE = b"kommunekode;cpr\r\n751;0101011234\r\n"
# Installing everything on a clean machine takes minutes; a delivery takes seconds.
START_SECONDS = 1200
DELIVERY_SECONDS = 120


class Failed(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone and its log")
    keep = parser.parse_args().keep
    for port in PORTS:
        if answers(port):
            print(f"first run: port {port} is already taken; stop what uses it first.")
            return 1
    workspace = Path(tempfile.mkdtemp(prefix="fdd-first-run-"))
    clone, log_path = workspace / "clone", workspace / "make-run.log"
    subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True)
    print(f"first run: make run in a fresh clone of {head()} ({clone})", flush=True)
    with log_path.open("wb") as log:
        # Its own process group: stopped below as a terminal's Ctrl-C stops it, all together.
        make = subprocess.Popen(
            ["make", "run"], cwd=clone, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        started = time.monotonic()
        wait_for_health(make)
        print(f"first run: /healthz answered after {time.monotonic() - started:.0f} s")
        remote_name = send_as_newcomer()
        print(f"first run: delivered and received as {remote_name}")
        stop(make)
        leftovers = processes_in(clone)
        if leftovers:
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)
            raise Failed(f"processes left running after Ctrl-C: {leftovers}")
        taken = [port for port in PORTS if answers(port)]
        if taken:
            raise Failed(f"ports still answering after Ctrl-C: {taken}")
        print("first run: stopped cleanly; nothing left running")
    except Failed as failure:
        stop(make)
        print(f"first run FAILED: {failure}\n--- the end of make run's output ---")
        print(log_path.read_text(errors="replace")[-6000:])
        print(f"(clone and log kept in {workspace})")
        return 1
    if not keep:
        shutil.rmtree(workspace, ignore_errors=True)
    return 0


def head() -> str:
    return subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for_health(make: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if make.poll() is not None:
            raise Failed(f"make run stopped with exit code {make.returncode}")
        try:
            with urllib.request.urlopen(f"{BASE}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise Failed(f"/healthz did not answer 200 within {START_SECONDS} s")


class Browser:
    """A person's browser, reduced to cookies and forms."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[str, str]:
        with self.opener.open(BASE + path, timeout=30) as response:
            return response.geturl(), response.read().decode()

    def post(self, path: str, fields: dict[str, str], files: dict | None = None) -> tuple[str, str]:
        body, content_type = encode(fields, files or {})
        request = urllib.request.Request(
            BASE + path, data=body, headers={"Content-Type": content_type, "Referer": BASE + path}
        )
        with self.opener.open(request, timeout=60) as response:
            return response.geturl(), response.read().decode()

    def log_in(self, username: str) -> None:
        _url, page = self.get("/login/")
        url, _page = self.post(
            "/login/",
            {"csrfmiddlewaretoken": csrf(page), "username": username, "password": PASSWORD},
        )
        if url.rstrip("/") != BASE:
            raise Failed(f"{username} could not log in with the README's password")


def csrf(page: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not found:
        raise Failed("a form without its CSRF token")
    return found.group(1)


def encode(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for name, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def send_as_newcomer() -> str:
    """README: log in as nordlys, Overførsler → Send en fil, the Aarhus route, any file; the
    transfer page shows it delivered within seconds, and fjordsoft finds it under Modtagne
    filer. Returns the file's name on the platform."""
    sender = Browser()
    sender.log_in("nordlys")
    _url, page = sender.get("/transfers/send/")
    route = re.search(r'<option value="(\d+)"[^>]*>[^<]*Aarhus[^<]*</option>', page)
    if not route:
        raise Failed("the send page offers no route to Aarhus")
    url, page = sender.post(
        "/transfers/send/",
        {"csrfmiddlewaretoken": csrf(page), "route": route.group(1)},
        {"data_file": ("borgere-aarhus.csv", DEMO_FILE)},
    )
    transfer = urllib.parse.urlsplit(url).path
    if not re.fullmatch(r"/transfers/\d+/", transfer):
        raise Failed(f"the send did not lead to a transfer page but to {url}")
    deadline = time.monotonic() + DELIVERY_SECONDS
    while "badge-success" not in page:
        if "badge-error" in page or time.monotonic() > deadline:
            raise Failed(f"the transfer {transfer} was not delivered")
        time.sleep(1)
        _url, page = sender.get(transfer)
    remote_name = re.search(r"nordlys_\w+_FDD_[0-9a-f-]{36}\.csv", page)
    if not remote_name:
        raise Failed("the transfer page does not show the file's name on the platform")
    receiver = Browser()
    receiver.log_in("fjordsoft")
    while remote_name.group() not in receiver.get("/transfers/received/")[1]:
        if time.monotonic() > deadline:
            raise Failed("fjordsoft did not find the file among its received files")
        time.sleep(1)
    return remote_name.group()


def stop(make: subprocess.Popen) -> None:
    if make.poll() is not None:
        return
    os.killpg(make.pid, signal.SIGINT)
    try:
        make.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(make.pid, signal.SIGKILL)
        make.wait()
    time.sleep(2)  # the portal's own children are given a moment after make returns


def processes_in(folder: Path) -> list[int]:
    """Processes working in the clone, or running a program from it (its .venv's python)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if cwd.startswith(str(folder)) or str(folder) in command:
            found.append(int(entry.name))
    return found


if __name__ == "__main__":
    sys.exit(main())
