"""`send_file` and `fetch_now`: what they print and their exit codes (0, 1, 2, 3)."""

import pytest
from django.core.management import CommandError, call_command

from handoff import cli
from tests.support import engine
from tests.support.handoff_setup import manage, no_declaration_pdf, ready_fixture  # noqa: F401
from tests.support.workers import worker_cluster
from transfers import tasks
from transfers.models import ReceivedFile, Route, Transfer

DATA = b"kommunekode;cpr\r\n751;0101011234\r\n461;0202021234\r\n751;0303031234\r\n"


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "borgere.csv"
    path.write_bytes(DATA)
    return path


def test_a_file_is_queued_and_its_id_printed(ready, data_file, capsys):
    call_command("send_file", "--route", str(ready.route.pk), str(data_file))
    transfer = Transfer.objects.get()
    assert capsys.readouterr().out.split() == [str(transfer.pk)]
    assert (transfer.original_name, transfer.state) == ("borgere.csv", Transfer.State.QUEUED)


def test_a_csv_file_is_split_over_the_flows_routes(ready, data_file, capsys):
    call_command(
        "send_file", "--route", str(ready.route.pk), "--split-csv", "kommunekode", str(data_file)
    )
    transfers = Transfer.objects.order_by("pk")
    assert capsys.readouterr().out.split() == [str(t.pk) for t in transfers]
    assert {t.route.municipality.municipality_code: t.size for t in transfers} == {
        "461": len("kommunekode;cpr\r\n461;0202021234\r\n"),
        "751": len("kommunekode;cpr\r\n751;0101011234\r\n751;0303031234\r\n"),
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--route", "999999", "FILE"], "No route 999999"),
        (["--route", "ROUTE", "/no/such/file.csv"], "is not a file"),
        (["--route", "ROUTE", "--split-csv", "nope", "FILE"], "nope"),
        (["--route", "ROUTE", "--user", "staff-b", "FILE"], "may not send"),
    ],
)
def test_refusals_exit_with_2(ready, data_file, staff_b, arguments, message):
    arguments = [
        str(data_file) if a == "FILE" else str(ready.route.pk) if a == "ROUTE" else a
        for a in arguments
    ]
    with pytest.raises(CommandError, match=message) as refused:
        call_command("send_file", *arguments)
    assert refused.value.returncode == cli.REFUSED
    assert Transfer.objects.count() == 0


def test_a_blocked_route_exits_with_2_and_says_why(ready, data_file):
    Route.objects.filter(pk=ready.route.pk).update(state=Route.State.SUSPENDED)
    with pytest.raises(CommandError) as refused:
        call_command("send_file", "--route", str(ready.route.pk), str(data_file))
    assert refused.value.returncode == cli.REFUSED


def test_waiting_past_the_timeout_exits_with_3(ready, data_file, capsys):
    with pytest.raises(SystemExit) as stopped:
        call_command(
            "send_file",
            "--route",
            str(ready.route.pk),
            "--wait",
            "--timeout",
            "0.2",
            str(data_file),
        )
    assert stopped.value.code == cli.TIMEOUT


@pytest.mark.system
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_declaration_pdf")
def test_the_commands_in_their_own_process(
    tmp_path, data_file, staff_a, operator, system_a, system_b, aarhus
):
    """Real exit codes: delivered 0, failed 1, usage 2; and a fetch of what arrived."""
    with engine.on_simulator(
        tmp_path,
        staff=staff_a,
        operator=operator,
        sender=system_a,
        receiver=system_b,
        municipalities=[aarhus],
    ) as ready:
        sim, route, receiver = ready.sim, ready.route, ready.receiver

        usage = manage("send_file", str(data_file))
        assert usage.returncode == cli.REFUSED and "--route" in usage.stderr

        with worker_cluster(env={"Q_WORKERS": "1"}):
            delivered = manage(
                "send_file", "--route", str(route.pk), "--wait", "--timeout", "60", str(data_file)
            )
            assert delivered.returncode == cli.OK, delivered.stderr
            transfer_id, line = delivered.stdout.splitlines()
            assert line == f"{transfer_id} delivered"

            engine.load_registry(sim, routes=())  # the platform no longer knows the route
            failed = manage(
                "send_file", "--route", str(route.pk), "--wait", "--timeout", "60", str(data_file)
            )
            assert failed.returncode == cli.FAILED, failed.stderr
            assert failed.stdout.splitlines()[1].split()[1] == "failed"

        # The workers fetched the delivered file already (the portal holds both accounts).
        fetched = manage("fetch_now", "--account", str(receiver.pk))
        assert fetched.returncode == cli.OK, fetched.stderr
        assert ReceivedFile.objects.filter(state=ReceivedFile.State.RECEIVED).count() == 1
        assert manage("fetch_now", "--account", "999999").returncode == cli.REFUSED


@pytest.mark.system
@pytest.mark.usefixtures("no_declaration_pdf")
def test_fetch_now_prints_what_it_received(
    tmp_path, staff_a, operator, system_a, system_b, aarhus, capsys
):
    with engine.on_simulator(
        tmp_path,
        staff=staff_a,
        operator=operator,
        sender=system_a,
        receiver=system_b,
        municipalities=[aarhus],
    ) as ready:
        route, receiver = ready.route, ready.receiver
        path = tmp_path / "borgere.csv"
        path.write_bytes(DATA)
        call_command("send_file", "--route", str(route.pk), str(path))
        assert tasks.send_transfer(Transfer.objects.get().pk) == "sent"
        capsys.readouterr()

        call_command("fetch_now", "--account", str(receiver.pk))
        received = ReceivedFile.objects.get()
        assert capsys.readouterr().out.split() == [str(received.pk), received.remote_name]

    # The simulator is gone: the fetch fails, and says so.
    with pytest.raises(SystemExit) as failed:
        call_command("fetch_now", "--account", str(receiver.pk))
    assert failed.value.code == cli.FAILED
