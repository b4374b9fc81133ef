"""Portal processes with an environment of a test's choosing: a worker cluster, the schedule
ticking faster than django-q's, and set-up steps on a database that is not the test run's (the
private PostgreSQL of tests/test_server_faults.py, which the test's own connection cannot reach
on the SQLite pass).

    environment = child_environment(DATABASE_URL=url, ...)   # tests/support/system.py
    with cluster(environment, log_path): ...       # `manage.py qcluster`
    with ticking(environment): ...                 # `python -m tests.support.private_portal tick`
    python -m tests.support.private_portal setup PARAMETERS_JSON   # prints what it made, as JSON
    set_up(environment, sim, registry, files=30, size=20_000)   # the same, from a test

`setup` makes what tests/support/engine.py makes for a test (vendors, people, an integration ready
for Aarhus, SFTP accounts on the given simulator, a route), writes the simulator's registry file
and queues `files` sends of random data. `tick` does what the cluster's scheduler does every
30 s and the minutely schedules do (start due retries; sweep abandoned sends, collect receipts,
fetch inboxes), every few seconds, and carries on through a database that is away.
"""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

SCHEDULED = (
    "transfers.tasks.requeue_abandoned",
    "transfers.tasks.collect_receipts",
    "transfers.tasks.fetch_all_inboxes",
)


def _registry_json(registry) -> dict:
    return {
        "users": [
            {
                "username": user.username,
                "it_system": str(user.it_system),
                "public_keys": list(user.public_keys),
            }
            for user in registry.users
        ],
        "infrefs": dict(registry.infrefs),
        "routes": [
            {
                "infref": route.infref,
                "sender_it_system": str(route.sender_it_system),
                "receiver_it_system": str(route.receiver_it_system),
                "recipient_authority": route.recipient_authority_cvr,
                "established": route.established,
            }
            for route in registry.routes
        ],
    }


def setup(parameters: dict) -> dict:
    import io

    from django.contrib.auth import get_user_model

    from portal.accounts.models import Membership, Organisation
    from portal.itsystems.models import ItSystem
    from tests.support import engine
    from transfers.queueing import queue_send
    from transfers.simulator.registry import Registry

    vendor_a = Organisation.objects.create(kind="vendor", name="Alfa Software A/S", cvr="39123452")
    vendor_b = Organisation.objects.create(kind="vendor", name="Beta Data ApS", cvr="41872632")
    aarhus = Organisation.objects.get(municipality_code="751")
    kombit = Organisation.objects.get(kind="kombit")
    people = {}
    for username, organisation in (("staff-a", vendor_a), ("operator", kombit)):
        # No password: nobody logs in, and hashing one with Argon2 costs a second here.
        people[username] = get_user_model().objects.create_user(username, password=None)
        Membership.objects.create(user=people[username], organisation=organisation)
    staff, operator = people["staff-a"], people["operator"]
    sender_system = ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Alfa Omsorg", vendor=vendor_a, is_sender=True
    )
    receiver_system = ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Beta Journal", vendor=vendor_b, is_receiver=True
    )
    ready = engine.ready_route(
        staff=staff,
        operator=operator,
        sender=sender_system,
        receiver=receiver_system,
        municipalities=[aarhus],
        port=parameters["port"],
        host_key=parameters["host_key"],
    )
    path = parameters["registry"]
    with open(f"{path}.tmp", "w") as out:
        json.dump(_registry_json(Registry.from_database()), out)
    os.replace(f"{path}.tmp", path)

    rng = random.Random(parameters.get("seed", 0))  # noqa: S311 - test data
    sent = {}
    for _ in range(parameters["files"]):
        data = rng.randbytes(parameters["size"])
        transfer = queue_send(
            ready.route, io.BytesIO(data), original_name="borgere.csv", user=staff
        )
        sent[transfer.remote_name] = transfer.sha256
    return {"receiver": ready.receiver.pk, "transfers": sent}


def tick(seconds: float, every: float = 0.5, scheduled_every: int = 6) -> None:
    """For `seconds`: start due retries every `every` seconds (django-q's scheduler looks every
    30 s), and queue the minutely jobs every `scheduled_every` of those."""
    from django.db import close_old_connections
    from django_q.scheduler import scheduler
    from django_q.tasks import async_task

    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        close_old_connections()  # one that broke with the database is opened anew
        try:
            scheduler()  # retries whose time has come
            if count % scheduled_every == 0:
                for function in SCHEDULED:
                    async_task(function, group="tick")
            count += 1
        except Exception as error:  # the database is away: try again shortly
            print(f"tick: {type(error).__name__}: {error}", flush=True)
        time.sleep(every)


@contextlib.contextmanager
def cluster(environment: dict[str, str], output):
    """`manage.py qcluster` with `environment` (as tests/support/workers.py starts one on the test
    run's database), its log in `output`; stopped on exit (SIGINT, then SIGKILL after 20 s)."""
    from tests.support.system import ROOT

    with open(output, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def set_up(environment: dict[str, str], sim, registry, *, files: int, size: int) -> dict:
    """`setup` in a portal process, for `sim` and its registry file: what it queued (remote
    name: SHA-256)."""
    from tests.support.system import ROOT

    parameters = {
        "files": files,
        "size": size,
        "port": sim.port,
        "host_key": f"{sim.host_key.get_name()} {sim.host_key.get_base64()}",
        "registry": str(registry),
    }
    made = subprocess.run(
        [sys.executable, "-m", "tests.support.private_portal", "setup", json.dumps(parameters)],
        cwd=ROOT,
        env=environment,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return json.loads(made.stdout.strip().splitlines()[-1])["transfers"]


@contextlib.contextmanager
def ticking(environment: dict[str, str], seconds: float = 600):
    """`tick` in a child process for the duration of the block."""
    from tests.support.system import ROOT

    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.private_portal", "tick", str(seconds)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def main(argv: list[str]) -> int:
    import django

    django.setup()
    if argv[0] == "setup":
        print(json.dumps(setup(json.loads(argv[1]))), flush=True)
    elif argv[0] == "tick":
        tick(float(argv[1]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
