"""Sends and fetches against the simulator: delivered once, fetched once, whatever happens."""

import csv
import hashlib
import io
import random
from datetime import UTC
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import translation

from tests.support import engine
from tests.support.sending import inbox
from tests.support.smtp import free_port
from transfers import protocol, sessions, tasks
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Route, SftpAccount, Transfer
from transfers.queueing import queue_send
from transfers.split import queue_split, split_csv

DATA = "kommunekode;cpr;navn\r\n751;0101011234;Åse Ørsted\r\n".encode() * 2000


@pytest.fixture
def setup(ready_route) -> engine.ReadyRoute:
    return ready_route(municipalities=2)


def queue(setup, data: bytes = DATA, code: str = "751") -> Transfer:
    return queue_send(
        setup.routes[code], io.BytesIO(data), original_name="borgere.csv", user=setup.staff
    )


def test_a_send_is_delivered_and_fetched_with_the_same_bytes(setup):
    transfer = queue(setup)
    assert tasks.send_transfer(transfer.pk) == "sent"
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.DELIVERED
    assert (transfer.bytes_done, transfer.attempts) == (len(DATA), 1)
    assert transfer.file_transfer_uuid is not None
    protocol.validate(transfer.trigger_xml.encode())
    trigger = protocol.parse_trigger(transfer.trigger_xml.encode())
    assert trigger.routing.infref == "FagsystemdefineredeDataRefGDPR4242_1"
    assert trigger.routing.recipient_authority_cvr == "55133018"
    assert trigger.descriptor.file_name == transfer.remote_name
    assert transfer.remote_name.startswith("alfa_omsorg_FDD_") and transfer.remote_name.endswith(
        ".csv"
    )
    protocol.validate(transfer.receipt_xml.encode())

    result = fetch_inbox(setup.receiver.pk)
    assert (result.received, result.quarantined) == (1, 0)
    received = ReceivedFile.objects.get()
    assert received.sha256 == hashlib.sha256(DATA).hexdigest() == transfer.sha256
    assert Path(received.stored_path).read_bytes() == DATA
    assert received.file_transfer_uuid == transfer.file_transfer_uuid
    assert received.route == transfer.route
    protocol.validate(received.metadata_xml.encode())
    assert inbox(setup) == []  # the pair is deleted only after it is stored


def test_a_duplicated_task_delivers_once(setup):
    transfer = queue(setup)
    assert tasks.send_transfer(transfer.pk) == "sent"
    assert tasks.send_transfer(transfer.pk) == "not queued"
    assert fetch_inbox(setup.receiver.pk).received == 1
    assert fetch_inbox(setup.receiver.pk).received == 0
    assert ReceivedFile.objects.count() == 1


def test_a_retry_after_the_trigger_was_written_does_not_send_again(setup):
    transfer = queue(setup)
    session = sessions.session_for(setup.sender)
    # A worker uploads the data and writes the trigger, then dies before recording it.
    Transfer.objects.filter(pk=transfer.pk).update(state=Transfer.State.SENDING)
    transfer = Transfer.objects.select_related(
        "route__infref", "route__municipality", "route__sender", "route__receiver", "account"
    ).get(pk=transfer.pk)
    tasks._upload_data(session, transfer)
    tasks._write_trigger(session, transfer)
    Transfer.objects.filter(pk=transfer.pk).update(state=Transfer.State.QUEUED, sent_at=None)

    assert tasks.send_transfer(transfer.pk) == "sent"
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.DELIVERED
    assert fetch_inbox(setup.receiver.pk).received == 1
    assert ReceivedFile.objects.count() == 1


def test_a_retry_after_a_broken_upload_sends_the_whole_file(setup):
    transfer = queue(setup)
    out = setup.sim.data_dir / "alfa_omsorg" / "OUT"
    out.mkdir(parents=True, exist_ok=True)
    (out / transfer.remote_name).write_bytes(DATA[:1000])  # what a dying worker left
    assert tasks.send_transfer(transfer.pk) == "sent"
    fetch_inbox(setup.receiver.pk)
    assert Path(ReceivedFile.objects.get().stored_path).read_bytes() == DATA


def test_an_error_receipt_fails_the_transfer_with_kombits_code(setup):
    engine.load_registry(setup.sim, routes=())  # the platform knows no route
    transfer = queue(setup)
    tasks.send_transfer(transfer.pk)
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.FAILED
    assert transfer.error_code == 106
    assert transfer.error_text
    assert inbox(setup) == []


def test_a_failed_transfer_is_resubmitted_as_the_same_record(setup):
    engine.load_registry(setup.sim, routes=())
    transfer = queue(setup)
    tasks.send_transfer(transfer.pk)
    engine.load_registry(setup.sim)
    assert tasks.resubmit(transfer)
    assert tasks.send_transfer(transfer.pk) == "sent"
    transfer.refresh_from_db()
    assert (transfer.state, transfer.attempts, transfer.error_code) == (
        Transfer.State.DELIVERED,
        2,
        None,
    )
    assert Transfer.objects.count() == 1


def test_a_route_that_is_not_ready_is_refused_before_anything_is_stored(setup, settings):
    task = setup.routes["751"].integration.tasks.get(
        number=70, municipality__municipality_code="751"
    )
    task.state = "in_progress"
    task.save()
    outgoing = Path(settings.TRANSFER_DATA_DIR) / "outgoing"
    before = set(outgoing.glob("*"))
    with pytest.raises(ValidationError) as error:
        queue(setup)
    assert "Opgave 70 (SFTP-ruten) er ikke udført for Aarhus Kommune." in error.value.messages
    assert not Transfer.objects.exists()
    assert set(outgoing.glob("*")) == before


def test_a_changed_host_key_stops_the_account(setup, tmp_path):
    transfer = queue(setup)
    SftpAccount.objects.filter(pk=setup.sender.pk).update(
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQsZpLQPe6nmcsYV0ZRaZ7UAjVc1vJ2JqZC3NZXnEq5"
    )
    assert tasks.send_transfer(transfer.pk) == "failed"
    transfer.refresh_from_db()
    account = SftpAccount.objects.get(pk=setup.sender.pk)
    assert account.host_key_mismatch_at is not None
    assert account.offered_host_key_fingerprint == setup.sim.fingerprint
    assert "changed" in transfer.last_error
    with pytest.raises(ValidationError, match="værtsnøgle"):
        queue(setup)


def test_a_data_file_without_metadata_is_quarantined_and_kept(setup, monkeypatch):
    monkeypatch.setattr("transfers.fetch.METADATA_GRACE_SECONDS", 0)
    folder = setup.sim.data_dir / "beta_journal" / "IN"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stray.csv").write_bytes(b"no metadata")
    (folder / "bad.csv").write_bytes(b"x")
    (folder / "bad.csv.metadata").write_bytes(b"<not-xml")
    result = fetch_inbox(setup.receiver.pk)
    assert (result.received, result.quarantined) == (0, 2)
    reasons = dict(ReceivedFile.objects.values_list("remote_name", "reason"))
    assert "without its metadata" in reasons["stray.csv"]
    assert "not valid" in reasons["bad.csv"]
    assert inbox(setup) == ["bad.csv", "bad.csv.metadata", "stray.csv"]
    fetch_inbox(setup.receiver.pk)
    assert ReceivedFile.objects.count() == 2  # reported once, not on every round


def test_a_csv_is_split_per_municipality_and_each_part_delivered(setup, tmp_path):
    source = tmp_path / "alle.csv"
    source.write_text("kommunekode;navn\r\n751;A\r\n461;B\r\n751;C\r\n", encoding="utf-8")
    transfers = queue_split(setup.routes.values(), source, "kommunekode", user=setup.staff)
    assert sorted(t.route.municipality.municipality_code for t in transfers) == ["461", "751"]
    for transfer in transfers:
        tasks.send_transfer(transfer.pk)
    fetch_inbox(setup.receiver.pk)
    texts = sorted(Path(r.stored_path).read_bytes().decode() for r in ReceivedFile.objects.all())
    assert texts == ["kommunekode;navn\r\n461;B\r\n", "kommunekode;navn\r\n751;A\r\n751;C\r\n"]


def test_each_part_holds_the_source_lines_as_they_were_written(db, tmp_path):
    """Quoting, line breaks inside a cell and the file's own line endings pass unchanged; a
    last line without its break gets one, so the part's next line stays a line of its own."""
    source = tmp_path / "alle.csv"
    source.write_bytes(b'kommunekode;"navn"\n751;"A; \n""B"""\n461;\'C\'\r\n751;D')
    parts = split_csv(source, "kommunekode", tmp_path)
    assert parts["751"].read_bytes() == b'kommunekode;"navn"\n751;"A; \n""B"""\n751;D\r\n'
    assert parts["461"].read_bytes() == b"kommunekode;\"navn\"\n461;'C'\r\n"


def test_each_part_holds_the_rows_the_csv_module_reads_for_its_municipality(db, tmp_path):
    """Lines without a quote are cut without the csv module, the others go through it: either
    way a part's rows are the csv module's rows of the source for that code, in order, and a
    blank line is in none."""
    rng = random.Random(20)  # noqa: S311 - test data, the same every run
    cells = ["A", "B C", "æøå", '"x;y"', '"sagt ""hej"""', '"to\r\nlinjer"', "", " ", "'q'"]
    lines = ['kommunekode;"navn";note\r\n']
    for _ in range(1200):  # several of the split's writes to each part
        code = rng.choice(["751", " 751", "751 ", "461", '"461"', " 461 "])
        lines.append(";".join([code, rng.choice(cells), rng.choice(cells)]) + "\r\n")
        if rng.random() < 0.05:
            lines.append(rng.choice(["\r\n", "\n"]))
    source = tmp_path / "alle.csv"
    source.write_text("".join(lines), encoding="utf-8", newline="")
    out = tmp_path / "out"
    out.mkdir()

    parts = split_csv(source, "kommunekode", out)

    def rows(path: Path) -> list[list[str]]:
        with path.open(encoding="utf-8", newline="") as handle:
            return [row for row in csv.reader(handle, delimiter=";") if row]

    header, *body = rows(source)
    for code, part in parts.items():
        expected = [row for row in body if row[0].strip().zfill(3) == code]
        assert rows(part) == [header, *expected]
    assert sorted(parts) == ["461", "751"]
    assert sum(len(rows(part)) - 1 for part in parts.values()) == len(body)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kommunekode;navn\r\n751;A\r\nB\r\n", "Linje 3"),  # no cell for the code
        ("kommunekode;navn\r\n751;A\r\n\r\n999;B\r\n", "Linje 4"),  # a blank line counts
        ('kommunekode;navn\r\n751;"A\r\nB"\r\n;C\r\n', "Linje 3"),  # a record, not a line
        ("navn;kommunekode\r\nA;751\r\nB\r\n", "Linje 3"),
        (f"kommunekode;navn\r\n751;{'x' * 200_000}\r\n", "CSV"),  # over the csv field limit
    ],
)
def test_a_row_the_split_cannot_read_refuses_the_file_and_keeps_nothing(
    db, tmp_path, text, message
):
    source = tmp_path / "alle.csv"
    source.write_text(text, encoding="utf-8", newline="")
    with translation.override("da"), pytest.raises(ValidationError, match=message):
        split_csv(source, "kommunekode", tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["alle.csv"]


def test_a_csv_naming_an_unknown_municipality_queues_nothing(setup, tmp_path):
    source = tmp_path / "alle.csv"
    source.write_text("kommunekode;navn\r\n751;A\r\n999;B\r\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="999"):
        queue_split(setup.routes.values(), source, "kommunekode", user=setup.staff)
    assert not Transfer.objects.exists()


def outgoing_entries() -> list[str]:
    folder = Path(settings.TRANSFER_DATA_DIR) / "outgoing"
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


def test_each_part_is_stored_whole_with_its_own_hash_and_nothing_else_stays(setup, tmp_path):
    source = tmp_path / "alle.csv"
    source.write_text("kommunekode;navn\r\n751;A\r\n461;B\r\n751;C\r\n", encoding="utf-8")
    parts = {
        "751": b"kommunekode;navn\r\n751;A\r\n751;C\r\n",
        "461": b"kommunekode;navn\r\n461;B\r\n",
    }
    before = outgoing_entries()
    transfers = queue_split(setup.routes.values(), source, "kommunekode", user=setup.staff)
    for transfer in transfers:
        data = parts[transfer.route.municipality.municipality_code]
        assert Path(transfer.payload).read_bytes() == data
        assert (transfer.size, transfer.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert transfer.original_name == f"alle-{transfer.route.municipality.municipality_code}.csv"
    # The payloads and nothing more: the split's own folder is gone.
    assert outgoing_entries() == sorted(before + [Path(t.payload).name for t in transfers])


def test_a_split_refused_while_queueing_leaves_no_part_behind(setup, tmp_path):
    source = tmp_path / "alle.csv"
    source.write_text("kommunekode;navn\r\n751;A\r\n461;B\r\n", encoding="utf-8")
    # The route of the part queued last (by code) is not ready: the part queued before it
    # leaves the store again, and nothing is queued.
    aarhus_route = setup.routes["751"]
    aarhus_route.state = Route.State.SUSPENDED
    aarhus_route.save()
    before = outgoing_entries()
    with pytest.raises(ValidationError, match=str(Route.State.SUSPENDED.label)):
        queue_split(setup.routes.values(), source, "kommunekode", user=setup.staff)
    assert not Transfer.objects.exists()
    assert outgoing_entries() == before


@pytest.fixture
def ready_aarhus(staff_a, operator, system_a, system_b, aarhus):
    """Alfa Omsorg's route to Beta Journal for Aarhus, onboarded and with its accounts: called
    with where the accounts point (tests.support.engine.ready_route's options)."""

    def ready(**options) -> engine.ReadyRoute:
        return engine.ready_route(
            staff=staff_a,
            operator=operator,
            sender=system_a,
            receiver=system_b,
            municipalities=[aarhus],
            **options,
        )

    return ready


@pytest.mark.system
def test_a_send_against_openssh_leaves_the_data_file_and_a_valid_trigger(ready_aarhus):
    """OpenSSH's sshd does not route: the send ends sent, waiting for the platform's receipt."""
    from tests.support.sshd import running_sshd

    with running_sshd() as sshd:
        (sshd.root / "OUT").mkdir()
        (sshd.root / "IN").mkdir()
        # The sending account on sshd; no receiver: OpenSSH delivers nothing to fetch.
        ready = ready_aarhus(
            receiver_account=False,
            usernames=(sshd.username, engine.RECEIVER),
            port=sshd.port,
            host_key=sshd.host_key,
        )
        sender, route = ready.sender, ready.route
        sshd.authorize(sender.public_key)
        transfer = queue_send(route, io.BytesIO(DATA), original_name="borgere.csv")
        try:
            outcome = tasks.send_transfer(transfer.pk)
        finally:
            sessions.drop_session(sender.pk)
        assert outcome == "sent", Transfer.objects.get(pk=transfer.pk).last_error
        transfer.refresh_from_db()
        assert transfer.state == Transfer.State.SENT
        data = (sshd.root / "OUT" / transfer.remote_name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == transfer.sha256
        trigger = (sshd.root / "OUT" / f"{transfer.remote_name}.trigger").read_bytes()
        protocol.validate(trigger)
        assert protocol.parse_trigger(trigger).descriptor.size == len(DATA)


def test_metadata_naming_another_sender_is_quarantined(setup):
    import uuid
    from datetime import datetime

    route = setup.routes["751"]
    name = "impostor_FDD_1.csv"
    metadata = protocol.Metadata(
        file_transfer_uuid=uuid.uuid4(),
        descriptor=protocol.FileDescriptor(
            file_name=name, size=4, sender="impostor", recipients=(protocol.ROUTING_RECIPIENT,)
        ),
        routing=protocol.RoutingInfo(
            infref=route.infref.name,
            sender_it_system=route.sender.uuid,
            sender_authority_cvr=route.municipality.cvr,
            transaction_id=uuid.uuid4(),
            sender_timestamp=datetime.now(UTC),
            recipient_authority_cvr=route.municipality.cvr,
            recipient_it_system=route.receiver.uuid,
        ),
    )
    folder = setup.sim.data_dir / "beta_journal" / "IN"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"data")
    (folder / f"{name}.metadata").write_bytes(protocol.build_metadata(metadata))
    assert fetch_inbox(setup.receiver.pk).quarantined == 1
    assert "impostor" in ReceivedFile.objects.get().reason
    assert inbox(setup) == [name, f"{name}.metadata"]


@pytest.fixture
def queued(monkeypatch) -> list[tuple[str, int]]:
    """The rounds the engine queues (task, account), recorded instead of queued."""
    rounds = []
    monkeypatch.setattr(
        tasks,
        "queue_soon",
        lambda task, account, _fingerprint, **_options: rounds.append((task, account)),
    )
    return rounds


@pytest.mark.system
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
@pytest.mark.parametrize("sends", [1, 3], ids=["alone", "together"])
def test_the_receiving_inbox_is_fetched_once_the_triggers_are_written(
    ready_aarhus, tmp_path, monkeypatch, queued, sends, busy
):
    """Where the portal holds the receiving account too, its fetch starts as the triggers are
    written, before any receipt (a platform that routes at once has put the files there by
    then), one for a batch sent together: queued ahead for the other worker while this one
    waits for the receipts, or, when other tasks wait for a worker, made by this one at once
    and the receipts left to a round queued behind them."""
    monkeypatch.setattr(tasks, "RECEIPT_WAIT_SECONDS", 0.1)
    monkeypatch.setattr(tasks, "others_wait", lambda: busy)
    fetched_here = []
    monkeypatch.setattr(tasks, "fetch_inbox", fetched_here.append)
    with engine.simulator(tmp_path, delay=60) as sim:  # routes nothing while the test runs
        ready = ready_aarhus(sim=sim)
        transfers = [
            queue_send(ready.route, io.BytesIO(DATA), original_name=f"borgere-{number}.csv")
            for number in range(sends)
        ]
        if busy:  # a send waits that does not go with these: over TOGETHER_FILE_BYTES
            large = io.BytesIO(bytes(tasks.TOGETHER_FILE_BYTES + 1))
            waiting = queue_send(ready.route, large, original_name="stor.csv")
        assert tasks.send_transfer(transfers[0].pk) == "sent"
    sent = Transfer.objects.exclude(pk=waiting.pk) if busy else Transfer.objects.all()
    assert {t.state for t in sent} == {Transfer.State.SENT}
    assert fetched_here == ([ready.receiver.pk] if busy else [])
    assert queued.count((tasks.FETCH_TASK, ready.receiver.pk)) == (0 if busy else 1)
    assert queued.count((tasks.RECEIPTS_TASK, ready.sender.pk)) == (1 if busy else 0)


@pytest.mark.system
def test_a_fetch_beside_the_sends_that_fails_is_queued_and_the_sends_stand(
    ready_aarhus, tmp_path, monkeypatch, queued
):
    """The receiving account cannot be reached: the sends are sent all the same, and the fetch
    goes to a task of its own, which retries it and keeps its failure on record."""
    monkeypatch.setattr(tasks, "others_wait", lambda: True)
    with engine.simulator(tmp_path, delay=60) as sim:
        ready = ready_aarhus(sim=sim)
        SftpAccount.objects.filter(pk=ready.receiver.pk).update(port=free_port())
        transfer = queue_send(ready.route, io.BytesIO(DATA), original_name="borgere.csv")
        assert tasks.send_transfer(transfer.pk) == "sent"
    assert Transfer.objects.get().state == Transfer.State.SENT
    assert queued.count((tasks.FETCH_TASK, ready.receiver.pk)) == 1


@pytest.mark.system
def test_a_delivered_file_received_already_queues_no_fetch_of_its_own(
    ready_aarhus, tmp_path, monkeypatch, queued
):
    """The fetch queued as the trigger was written has the file by the time its receipt is read:
    the receipt queues none more (one each, run one after another, found nothing)."""
    with engine.simulator(tmp_path) as sim:
        ready = ready_aarhus(sim=sim)
        received, waiting = [
            queue_send(ready.route, io.BytesIO(DATA), original_name=f"borgere-{number}.csv")
            for number in range(2)
        ]
        monkeypatch.setattr(tasks, "RECEIPT_WAIT_SECONDS", 0)  # the receipts are read below
        for transfer in (received, waiting):
            tasks.send_transfer(transfer.pk)
        fetch_inbox(ready.receiver.pk)
        # As if the second's file had come after that fetch: its receipt queues one.
        ReceivedFile.objects.filter(remote_name=waiting.remote_name).delete()
        queued.clear()
        assert tasks.collect_receipts() == 2
    assert queued == [(tasks.FETCH_TASK, ready.receiver.pk)]
