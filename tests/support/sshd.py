"""A real OpenSSH sshd for one test (or one benchmark), on a free loopback port.

`running_sshd()` writes a config, an Ed25519 host key and a client key into a temp dir, starts
`/usr/sbin/sshd -D -e -f <config>` and yields an `Sshd` with everything a client needs. Files
uploaded to relative paths land in `Sshd.root` (internal-sftp starts there). It works as root
(CI) and as an ordinary user; sshd logs to `Sshd.log_path`.

    with running_sshd() as server:
        SftpSession(host=server.host, port=server.port, username=server.username,
                    private_key=server.private_key, host_key=server.host_key)

For pytest: `sshd = sshd_fixture()` (or `sshd_fixture(scope="module")`) in a test module.
"""

import getpass
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT = 10.0


@dataclass
class Sshd:
    host: str
    port: int
    username: str
    private_key: bytes  # the client's private key (OpenSSH format)
    private_key_path: Path
    public_key: str  # the client's "type base64 comment" line, in authorized_keys
    host_key: str  # the server's "ssh-ed25519 AAAA..." line (no comment)
    host_key_path: Path  # the server's private host key; `.pub` next to it
    root: Path  # internal-sftp's start directory: relative paths land here
    directory: Path  # the temp dir holding config, keys and log
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def session(self, port: int | None = None, timeout: float = 10.0):
        """The portal's SftpSession as this server's user, the host key pinned; `port`: to go
        through a proxy in front of it."""
        from transfers.sftp import SftpSession

        return SftpSession(
            host=self.host,
            port=port or self.port,
            username=self.username,
            private_key=self.private_key,
            host_key=self.host_key,
            timeout=timeout,
        )

    def authorize(self, public_key_line: str) -> None:
        """Allow one more client key."""
        with open(self.directory / "authorized_keys", "a") as keys:
            keys.write(public_key_line.strip() + "\n")

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes: every descendant of the listener."""
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
        found, frontier = [], [self.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent]
            found.extend(children)
            frontier.extend(children)
        return found

    def kill_sessions(self) -> int:
        """Break every open connection at once (SIGKILL to the per-connection processes)."""
        pids = self.session_pids()
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _openssh_version() -> tuple[int, int]:
    output = subprocess.run([SSHD, "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", output.stderr + output.stdout)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _keygen(path: Path, kind: str = "ed25519") -> None:
    arguments = [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "", "-f", str(path)]
    if kind == "rsa":
        arguments[4:4] = ["-b", "3072"]
    subprocess.run(arguments, check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(directory: Path, root: Path, port: int, username: str) -> str:
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {directory / 'ssh_host_ed25519_key'}",
        f"PidFile {directory / 'sshd.pid'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "UsePAM no",
        f"AllowUsers {username}",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "X11Forwarding no",
        "PrintMotd no",
        "LogLevel VERBOSE",
        f"Subsystem sftp internal-sftp -d {root}",
    ]
    if _openssh_version() >= (9, 8):
        # Tests deliberately fail authentication; penalties would refuse the next connection.
        lines.append("PerSourcePenalties no")
    return "\n".join(lines) + "\n"


def _limit_files(count: int):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))

    return limit


def _wait_for_banner(process: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                if probe.recv(8).startswith(b"SSH-2.0"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not accept connections on port {port}:\n{log_path.read_text()}")


@contextmanager
def running_sshd(
    base: str | os.PathLike | None = None, open_files: int | None = None
) -> Iterator[Sshd]:
    """Start sshd; its temp dir (config, keys, log and the files' root) goes under `base`. With
    `open_files`, sshd and its sessions may have no more files open than that (a server that
    caps the handles a client may hold)."""
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} is not installed")
    username = getpass.getuser()
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sshd-", dir=base) as temp:
        directory = Path(temp)
        root = directory / "root"
        root.mkdir()
        _keygen(directory / "ssh_host_ed25519_key")
        _keygen(directory / "client_key")
        public_key = (directory / "client_key.pub").read_text().strip()
        (directory / "authorized_keys").write_text(public_key + "\n")
        host_key = " ".join((directory / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        log_path = directory / "sshd.log"
        config_path = directory / "sshd_config"

        process = None
        for _attempt in range(5):  # another process may take the free port before sshd does
            port = _free_port()
            config_path.write_text(_config(directory, root, port, username))
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=None if open_files is None else _limit_files(open_files),
                )
            try:
                _wait_for_banner(process, port, log_path)
                break
            except RuntimeError:
                if process.poll() is None:
                    process.kill()
                process.wait()
                if "Address already in use" not in log_path.read_text():
                    raise
        else:
            raise RuntimeError(f"sshd could not find a free port:\n{log_path.read_text()}")

        server = Sshd(
            host="127.0.0.1",
            port=port,
            username=username,
            private_key=(directory / "client_key").read_bytes(),
            private_key_path=directory / "client_key",
            public_key=public_key,
            host_key=host_key,
            host_key_path=directory / "ssh_host_ed25519_key",
            root=root,
            directory=directory,
            log_path=log_path,
            process=process,
        )
        try:
            yield server
        finally:
            for pid in server.session_pids():
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def sshd_fixture(scope: str = "function"):
    """A pytest fixture yielding a running `Sshd`; assign it to a name in a test module."""

    @pytest.fixture(scope=scope)
    def sshd() -> Iterator[Sshd]:
        with running_sshd() as server:
            yield server

    return sshd
