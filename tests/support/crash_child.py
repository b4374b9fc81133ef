"""A worker that dies by SIGKILL at a chosen point of a real send or fetch (issue 8, point 1).

    python -m tests.support.crash_child      # environment: tests.support.system.child_environment()

It sets Django up once and then, for every request on stdin, forks a child that wraps the real
code at one point so that it kills its own process there (no production hook, no mock: the task
runs for real until that moment) and calls the real task, `send_transfer` or `fetch_inbox`.
Forking a process that has Django, paramiko and the portal loaded makes a run cost a fork and an
SSH login instead of a Python start-up.

A request is one JSON line: {"task": "send" | "fetch", "id": N, "point": NAME, "at": K}; `at`
counts the requests or blocks of "upload" and "download". The answer is one JSON line:
{"killed": true} when the child died at the point, else {"killed": false, "exit": status,
"result": the task's return value or the error it raised}.
"""

import functools
import json
import os
import queue
import signal
import subprocess
import sys
import threading

# The kill points, by what has happened when the worker dies.
SEND_POINTS = (
    "upload",  # the data file partly written: before the at-th write request
    "before-trigger",  # the data file complete; nothing about the trigger recorded
    "trigger-recorded",  # trigger_started_at saved; the trigger not opened on the server
    "trigger-opened",  # the trigger open on the server, no byte written
    "trigger-unclosed",  # the trigger's bytes sent, its close not
    "after-trigger",  # the trigger written and closed; the send not recorded as sent
    "sent-recorded",  # recorded as sent; the receipt not looked for
    "receipt-recorded",  # the receipt read and recorded; not removed from the server
)
FETCH_POINTS = (
    "download",  # the data file partly stored: before the at-th block reaches the local file
    "after-move",  # the data file complete in its final place; not recorded
    "recorded",  # recorded; the remote pair not deleted
    "between-deletes",  # the remote data file deleted, its metadata not
)


class CrashWorker:
    """The forking worker, started by a test: `run(request)` answers within `timeout` seconds."""

    def __init__(self, log_path, *, data_dir=None, timeout: float = 60.0):
        from tests.support.system import ROOT, child_environment

        overrides = {} if data_dir is None else {"PORTAL_DATA_DIR": str(data_dir)}
        self.timeout = timeout
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_child"],
            cwd=ROOT,
            env=child_environment(**overrides),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        self._answers = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._answers.put(json.loads(line))
        self._answers.put(None)

    def run(self, **request) -> dict:
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        try:
            answer = self._answers.get(timeout=self.timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"no answer to {request} in {self.timeout} s") from None
        if answer is None:
            raise AssertionError(f"the crash worker exited ({self.process.poll()})")
        return answer

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._reader.join(5)
        self.process.stdout.close()
        self._log.close()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _inject(point: str, at: int) -> None:
    """Wrap the real code so that this process kills itself at `point`."""
    from paramiko.sftp import CMD_CLOSE, CMD_WRITE

    from transfers import fetch, sftp, sftp_batch, tasks

    state = {"doing": None, "count": 0}
    session_class = sftp.SftpSession

    def around(owner, name, before=None, after=None):
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            if before is not None:
                before(*args, **kwargs)
            result = original(*args, **kwargs)
            if after is not None:
                after(*args, **kwargs)
            return result

        setattr(owner, name, wrapper)

    def doing(what):
        def mark(*_args, **_kwargs):
            state["doing"], state["count"] = what, 0

        return mark

    # What the session is writing or reading, for the points that count requests or blocks.
    def triggers(files) -> bool:
        return all(path.endswith(".trigger") for path in files)

    around(session_class, "_upload", before=doing("data"))
    # Triggers, and data files sent together, are written by put_small_files.
    around(
        session_class,
        "put_small_files",
        before=lambda _self, files, **_k: doing("trigger" if triggers(files) else "data")(),
    )
    around(
        session_class,
        "get_file",
        before=lambda _self, path, *_a, **_k: doing(
            "metadata" if path.endswith(".metadata") else "download"
        )(),
    )

    if point in ("upload", "trigger-opened", "trigger-unclosed"):
        # The portal's client, which sends its writes itself and the rest through paramiko's.
        original_request = sftp._SFTPClient._async_request

        def request(self, fileobj, kind, *args):
            if point == "upload" and state["doing"] == "data":
                state["count"] += kind == CMD_WRITE
                if state["count"] >= at or kind == CMD_CLOSE:  # at the latest before the close
                    _die()
            if state["doing"] == "trigger" and (
                (point == "trigger-opened" and kind == CMD_WRITE)
                or (point == "trigger-unclosed" and kind == CMD_CLOSE)
            ):
                _die()
            return original_request(self, fileobj, kind, *args)

        sftp._SFTPClient._async_request = request
    elif point == "before-trigger":
        around(tasks, "_write_trigger", before=lambda *_a: _die())
        around(tasks, "_record_triggers", before=lambda *_a: _die())
    elif point in ("trigger-recorded", "after-trigger"):

        def at_triggers(_self, files, **_kwargs) -> None:
            if triggers(files):
                _die()

        where = "before" if point == "trigger-recorded" else "after"
        around(session_class, "put_small_files", **{where: at_triggers})
    elif point == "sent-recorded":
        # Where the send turns to its receipt (waits for it, or queues a task to).
        around(tasks, "_receipt_now_or_later", before=lambda *_a: _die())
        around(tasks, "_receipts_later", before=lambda *_a: _die())
    elif point in ("receipt-recorded", "recorded", "between-deletes"):
        suffix = {"receipt-recorded": ".sftpreceipt", "between-deletes": ".metadata"}.get(point)

        def before_remove(_self, path, *_args, **_kwargs):
            name = path.rsplit("/", 1)[-1]
            if (suffix and name.endswith(suffix)) or (
                suffix is None and not name.endswith((".metadata", ".sftpreceipt"))
            ):
                _die()

        around(session_class, "remove", before=before_remove)
        # The fetch removes its pairs' data files together, then their metadata files.
        around(session_class, "remove_many", before=lambda s, paths: before_remove(s, paths[0]))
    elif point == "download":
        original_write = sftp._BlockWriter.write

        def write(self, data, timeout):
            if state["doing"] == "download":
                state["count"] += 1
                if state["count"] >= at:
                    _die()
            return original_write(self, data, timeout)

        sftp._BlockWriter.write = write

        # At the latest when the last block is in: the file not yet complete on the disk.
        def before_finish(*_args) -> None:
            if state["doing"] == "download":
                _die()

        around(sftp._BlockWriter, "finish", before=before_finish)

        # The same in the fetch's batched downloads: blocks of many files, each then completed.
        def before_block(*_args) -> None:
            state["count"] += 1
            if state["count"] >= at:
                _die()

        around(sftp_batch, "_write_block", before=before_block)
        around(sftp_batch, "_complete", before=lambda *_a: _die())
        # A small file is gathered in memory and written whole by a completer.
        around(sftp_batch, "_write_whole", before=lambda *_a: _die())
    elif point == "after-move":
        around(fetch, "_fsync_directory", after=lambda *_a: _die())
    else:
        raise ValueError(f"unknown kill point {point!r}")


def _child(request: dict) -> dict:
    from transfers import fetch, tasks

    _inject(request["point"], int(request.get("at", 1)))
    try:
        if request["task"] == "send":
            result = tasks.send_transfer(request["id"])
        else:
            result = str(fetch.fetch_inbox(request["id"]))
    except Exception as error:  # reported to the test, which fails on it
        return {"result": f"{type(error).__name__}: {error}"}
    return {"result": result}


def main() -> int:
    import django

    django.setup()
    from django.db import connections

    import transfers.fetch
    import transfers.tasks  # noqa: F401 - loaded once, before the forks

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        connections.close_all()  # a child must open its own database connection
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 0
            try:
                answer = _child(request)
            except BaseException as error:
                answer, code = {"result": f"{type(error).__name__}: {error}"}, 1
            os.write(write_end, json.dumps(answer).encode())
            os._exit(code)
        os.close(write_end)
        _pid, status = os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as pipe:
            raw = pipe.read()
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        answer = {"killed": killed, "exit": status, **(json.loads(raw) if raw else {})}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
