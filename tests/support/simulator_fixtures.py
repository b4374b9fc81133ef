"""Helpers to run the Serviceplatform simulator in tests: keys, registries, servers, clients.

    user = make_user("alfa", tmp_path)
    registry = write_registry(tmp_path / "registry.json", users=[user], infrefs={...}, routes=[...])
    with running_simulator(tmp_path / "sp", registry) as sim:        # a thread, a free port
        with sftp_client(sim.port, user, host_key=sim.host_key) as sftp:
            ...
    with simulator_process(tmp_path / "sp", registry) as proc:       # `manage.py serviceplatform`
        ...proc.port, proc.fingerprint...

Every wait is bounded: `wait_for` polls with short sleeps and fails after its timeout.
"""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.support.system import ROOT
from transfers.simulator import Registry, Simulator


@dataclass(frozen=True)
class TestUser:
    """An SFTP user with a key pair on disk (OpenSSH format, mode 0600, usable by `sftp -i`)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    username: str
    it_system: uuid.UUID
    key: paramiko.PKey
    key_path: Path
    public_line: str


def make_user(
    username: str, directory: Path, it_system: uuid.UUID | None = None, kind: str = "ed25519"
) -> TestUser:
    if kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    elif kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(kind)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{username}_{kind}_key"
    path.write_bytes(pem)
    path.chmod(0o600)
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return TestUser(
        username=username,
        it_system=it_system or uuid.uuid4(),
        key=paramiko.PKey.from_path(path),
        key_path=path,
        public_line=f"{public} {username}@test",
    )


def route(
    infref: str,
    sender: TestUser | uuid.UUID,
    receiver: TestUser | uuid.UUID,
    cvr: str,
    established: bool = True,
) -> dict:
    """One route in the registry file's format."""
    return {
        "infref": infref,
        "sender_it_system": str(getattr(sender, "it_system", sender)),
        "receiver_it_system": str(getattr(receiver, "it_system", receiver)),
        "recipient_authority": cvr,
        "established": established,
    }


def registry_data(users=(), infrefs=None, routes=()) -> dict:
    return {
        "users": [
            {
                "username": user.username,
                "it_system": str(user.it_system),
                "public_keys": [user.public_line],
            }
            for user in users
        ],
        "infrefs": dict(infrefs or {}),
        "routes": list(routes),
    }


def write_registry(path: Path, users=(), infrefs=None, routes=()) -> Path:
    """Write a registry JSON file (the format of docs/simulator.md) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(registry_data(users, infrefs, routes), indent=2))
    os.replace(temporary, path)  # the simulator rereads it when it changes: never half a file
    return path


@contextmanager
def running_simulator(data_dir: Path, registry: Registry | Path | None, **options) -> Iterator:
    """A Simulator in this process, on a free loopback port; stopped (and joined) on exit."""
    simulator = Simulator(data_dir, registry=registry, host="127.0.0.1", port=0, **options)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop(timeout=5)


@dataclass
class SimulatorProcess:
    process: subprocess.Popen
    host: str
    port: int
    fingerprint: str
    output: list[str]


@contextmanager
def simulator_process(
    data_dir: Path, registry: Path | None, *args: str, timeout: float = 30.0, env=None
) -> Iterator[SimulatorProcess]:
    """`manage.py serviceplatform --port 0` in a child process; SIGTERM (then kill) on exit."""
    command = [sys.executable, "manage.py", "serviceplatform", "--port", "0"]
    command += ["--data-dir", str(data_dir)]
    if registry is not None:
        command += ["--registry", str(registry)]
    command += list(args)
    # Not child_environment(): this runs outside the test run too (bench/), where the command
    # needs only a settings module, and no database or data folder of a test.
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.support.settings", **(env or {})}
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    lines: queue.Queue = queue.Queue()

    def read_output():
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        host = port = fingerprint = None
        deadline = time.monotonic() + timeout
        while fingerprint is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"the simulator did not start: {''.join(output)}") from None
            if line is None:
                raise RuntimeError(f"the simulator exited: {''.join(output)}")
            listening = re.search(r"listening on (\S+):(\d+)", line)
            if listening:
                host, port = listening.group(1), int(listening.group(2))
            key = re.search(r"host key\s+(SHA256:\S+)", line)
            if key and port is not None:
                fingerprint = key.group(1)
        yield SimulatorProcess(process, host, port, fingerprint, output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        reader.join(5)


@contextmanager
def sftp_client(
    port: int,
    user: TestUser,
    host: str = "127.0.0.1",
    host_key: paramiko.PKey | None = None,
    timeout: float = 10.0,
    gcm: bool = False,
) -> Iterator[paramiko.SFTPClient]:
    """A paramiko SFTP client logged in with the user's key (the host key checked if given)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = transport.auth_timeout = transport.handshake_timeout = timeout
    if gcm:
        transport.get_security_options().ciphers = ("aes128-gcm@openssh.com",)
    try:
        transport.connect(hostkey=host_key, username=user.username, pkey=user.key)
        sftp = paramiko.SFTPClient.from_transport(transport)
        sftp.get_channel().settimeout(timeout)
        try:
            yield sftp
        finally:
            sftp.close()
    finally:
        transport.close()


def wait_for(
    condition: Callable[[], object] | Path, timeout: float = 5.0, interval: float = 0.02
) -> object:
    """Poll until `condition()` is truthy (or the path exists); AssertionError after timeout."""
    check = condition.exists if isinstance(condition, Path) else condition
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {condition}")
        time.sleep(interval)


def openssh_sftp(port: int, user: TestUser, batch: str, cwd: Path, timeout: float = 30.0):
    """Run OpenSSH's `sftp -b` with the batch commands; the CompletedProcess."""
    batch_file = cwd / "batch.txt"
    batch_file.write_text(batch)
    return subprocess.run(
        [
            "sftp",
            "-b",
            str(batch_file),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
            str(user.key_path),
            "-P",
            str(port),
            f"{user.username}@127.0.0.1",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
