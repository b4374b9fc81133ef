"""SftpSession against OpenSSH's own `sftp`, same sshd, same run: throughput and client memory.

    .venv/bin/python -m bench.throughput [--size-mib 1024] [--runs 3] [--dir /dev/shm]

Starts a real sshd (tests/sshd.py) on loopback, then for each run uploads and downloads the file
with `sftp -b` (OpenSSH defaults) and with SftpSession (each transfer in a fresh subprocess),
alternating which goes first. Prints medians and ratios, and the peak RSS above idle of the
SftpSession process (VmHWM) for 10 MiB, 100 MiB and the full size; writes everything to
bench/results/throughput-<date>.json. See bench/README.md.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
FLOORS = {"upload": 0.75, "download": 0.45}
MEMORY_LIMIT_MIB = 100
MB = 1_000_000
SFTP = shutil.which("sftp") or "/usr/bin/sftp"
SSH = shutil.which("ssh") or "/usr/bin/ssh"


# -- the SftpSession side, run in a subprocess ------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(spec: dict) -> dict:
    """One transfer with a fresh SftpSession; prints timings, digest and VmHWM before/after."""
    sys.path.insert(0, str(ROOT))
    from transfers.sftp import SftpSession

    session = SftpSession(
        host=spec["host"],
        port=spec["port"],
        username=spec["username"],
        private_key=Path(spec["key"]).read_bytes(),
        host_key=spec["host_key"],
    )
    started = time.perf_counter()
    session.connect()
    connected = time.perf_counter()
    idle_hwm = _status_kib("VmHWM")
    idle_rss = _status_kib("VmRSS")
    if spec["direction"] == "upload":
        size, digest = session.put_file(spec["local"], spec["remote"])
    else:
        size, digest = session.get_file(spec["remote"], spec["local"])
    transferred = time.perf_counter()
    cipher = session.transport.remote_cipher
    session.close()
    finished = time.perf_counter()
    return {
        "size": size,
        "sha256": digest,
        "seconds": finished - started,  # connect + transfer + close, like a whole `sftp -b` run
        "transfer_seconds": transferred - connected,
        "idle_hwm_kib": idle_hwm,
        "idle_rss_kib": idle_rss,
        "peak_hwm_kib": _status_kib("VmHWM"),
        "cipher": cipher,
    }


def run_session(server, direction: str, local: Path, remote: str) -> dict:
    spec = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "key": str(server.private_key_path),
        "host_key": server.host_key,
        "direction": direction,
        "local": str(local),
        "remote": remote,
    }
    output = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench.throughput", "--child", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if output.returncode != 0:
        raise RuntimeError(f"SftpSession {direction} failed:\n{output.stderr}")
    result = json.loads(output.stdout)
    result["above_idle_mib"] = (result["peak_hwm_kib"] - result["idle_hwm_kib"]) / 1024
    return result


# -- the OpenSSH side --------------------------------------------------------------------------


def sftp_command(server, *extra: str) -> list[str]:
    return [
        SFTP,
        *extra,
        "-b",
        "-",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-i",
        str(server.private_key_path),
        "-P",
        str(server.port),
        f"{server.username}@{server.host}",
    ]


def run_openssh(server, batch: str) -> dict:
    """Time one whole `sftp -b` run; its own peak RSS comes from wait4()."""
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - fixed arguments
        sftp_command(server, "-q"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    process.stdin.write(batch.encode())
    process.stdin.close()
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"sftp failed ({process.returncode}): {error}")
    return {"seconds": seconds, "max_rss_kib": usage.ru_maxrss}


def openssh_cipher(server) -> str:
    output = subprocess.run(  # noqa: S603 - fixed arguments
        sftp_command(server, "-v"), input="pwd\n", capture_output=True, text=True, check=False
    )
    match = re.search(r"server->client cipher: (\S+)", output.stderr)
    return match[1] if match else "unknown"


# -- helpers -----------------------------------------------------------------------------------


def make_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(mib):
            block = os.urandom(1 << 20)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while block := data.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory_kib = int(info.readline().split()[1])
    import cryptography
    import paramiko

    ssh = subprocess.run([SSH, "-V"], capture_output=True, text=True, check=False)  # noqa: S603
    sshd = subprocess.run(["/usr/sbin/sshd", "-V"], capture_output=True, text=True, check=False)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "paramiko": paramiko.__version__,
        "cryptography": cryptography.__version__,
        "openssh_client": (ssh.stderr or ssh.stdout).strip(),
        "openssh_server": (sshd.stderr or sshd.stdout).strip().splitlines()[0],
        "load_average_before": os.getloadavg(),
    }


# -- the benchmark ------------------------------------------------------------------------------


def benchmark(size_mib: int, runs: int, base: str | None) -> dict:
    from tests.sshd import running_sshd

    size = size_mib << 20
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {"size_mib": size_mib, "runs": runs, "dir": base or tempfile.gettempdir()},
        "runs": [],
    }
    with running_sshd(base) as server, tempfile.TemporaryDirectory(dir=base) as temp:
        work = Path(temp)
        source = work / "source.bin"
        print(f"Writing a {size_mib} MiB random file in {work} ...", flush=True)
        source_sha = make_file(source, size_mib)
        shutil.copyfile(source, server.root / "download.bin")
        report["settings"]["openssh_cipher"] = openssh_cipher(server)

        for run in range(runs):
            order = ("openssh", "session") if run % 2 == 0 else ("session", "openssh")
            row = {}
            for direction in ("upload", "download"):
                for client in order:
                    key = f"{client}_{direction}"
                    if direction == "upload":
                        remote = f"up-{client}.bin"
                        remove(server.root / remote)
                        if client == "openssh":
                            result = run_openssh(server, f"put {source} {remote}\n")
                        else:
                            result = run_session(server, "upload", source, remote)
                        if file_sha256(server.root / remote) != source_sha:
                            raise RuntimeError(f"{key}: the uploaded file differs")
                    else:
                        local = work / f"down-{client}.bin"
                        remove(local)
                        if client == "openssh":
                            result = run_openssh(server, f"get download.bin {local}\n")
                            if file_sha256(local) != source_sha:
                                raise RuntimeError(f"{key}: the downloaded file differs")
                        else:
                            result = run_session(server, "download", local, "download.bin")
                            if result["sha256"] != source_sha:
                                raise RuntimeError(f"{key}: the downloaded file differs")
                        remove(local)
                    result["mb_per_s"] = size / result["seconds"] / MB
                    row[key] = result
                    print(f"  run {run + 1} {key:17} {result['mb_per_s']:7.1f} MB/s", flush=True)
            report["runs"].append(row)
            for client in ("openssh", "session"):
                remove(server.root / f"up-{client}.bin")

        memory = {}
        for mib in sorted({10, 100, size_mib}):
            if mib == size_mib:
                above = {
                    direction: max(
                        row[f"session_{direction}"]["above_idle_mib"] for row in report["runs"]
                    )
                    for direction in ("upload", "download")
                }
            else:
                small = work / f"source-{mib}.bin"
                make_file(small, mib)
                shutil.copyfile(small, server.root / f"download-{mib}.bin")
                local = work / f"down-{mib}.bin"
                above = {
                    "upload": run_session(server, "upload", small, f"up-{mib}.bin")[
                        "above_idle_mib"
                    ],
                    "download": run_session(server, "download", local, f"download-{mib}.bin")[
                        "above_idle_mib"
                    ],
                }
                for path in (
                    small,
                    local,
                    server.root / f"download-{mib}.bin",
                    server.root / f"up-{mib}.bin",
                ):
                    remove(path)
            memory[str(mib)] = above
        report["memory_above_idle_mib"] = memory
        report["session_cipher"] = report["runs"][0]["session_upload"]["cipher"]

    summary = {}
    for direction in ("upload", "download"):
        openssh = statistics.median(
            row[f"openssh_{direction}"]["mb_per_s"] for row in report["runs"]
        )
        session = statistics.median(
            row[f"session_{direction}"]["mb_per_s"] for row in report["runs"]
        )
        summary[direction] = {
            "openssh_mb_per_s": round(openssh, 1),
            "session_mb_per_s": round(session, 1),
            "ratio": round(session / openssh, 3),
            "floor": FLOORS[direction],
            "meets_floor": session / openssh >= FLOORS[direction],
        }
    peak = max(max(values.values()) for values in report["memory_above_idle_mib"].values())
    summary["memory"] = {
        "peak_above_idle_mib": round(peak, 1),
        "limit_mib": MEMORY_LIMIT_MIB,
        "meets_limit": peak < MEMORY_LIMIT_MIB,
    }
    report["summary"] = summary
    report["machine"]["load_average_after"] = os.getloadavg()
    return report


def print_report(report: dict) -> None:
    summary = report["summary"]
    settings = report["settings"]
    print()
    print(
        f"{settings['size_mib']} MiB, {settings['runs']} runs, medians; MB = 10^6 bytes; "
        f"files in {settings['dir']}"
    )
    print(
        f"OpenSSH sftp ({settings['openssh_cipher']}) vs SftpSession ({report['session_cipher']})"
    )
    print(f"{'':10} {'OpenSSH':>10} {'SftpSession':>12} {'ratio':>7} {'floor':>6}")
    for direction in ("upload", "download"):
        line = summary[direction]
        verdict = "ok" if line["meets_floor"] else "MISSED"
        print(
            f"{direction:10} {line['openssh_mb_per_s']:10.1f} {line['session_mb_per_s']:12.1f} "
            f"{line['ratio']:7.2f} {line['floor']:6.2f} {verdict}"
        )
    print()
    print("SftpSession peak RSS above idle (VmHWM after - before the transfer), MiB")
    print(f"{'size':>10} {'upload':>8} {'download':>9}")
    for mib, values in report["memory_above_idle_mib"].items():
        print(f"{mib + ' MiB':>10} {values['upload']:8.1f} {values['download']:9.1f}")
    print()
    for run, row in enumerate(report["runs"], 1):
        print(
            f"run {run}: "
            + ", ".join(f"{key} {value['mb_per_s']:.0f}" for key, value in row.items())
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--dir", default=None, help="where sshd and the files live (default: TMPDIR)"
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.child:
        print(json.dumps(child(json.loads(arguments.child))))
        return 0
    report = benchmark(arguments.size_mib, arguments.runs, arguments.dir)
    print_report(report)
    if not arguments.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS / f"throughput-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
