"""SFTP_ALLOWED_HOSTS: the portal connects only to the endpoints it lists (transfers/endpoints.py).

A vendor types an SFTP account's host and port; without the list the host key probe told open,
closed and SSH ports of the portal's network apart. A refused endpoint is refused before any
socket is opened, with one message whatever listens there.
"""

import io
import os
import socket
from contextlib import contextmanager

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import translation
from django_q.models import Schedule

from tests.support import engine
from tests.support.simulator_fixtures import running_simulator
from transfers import endpoints, tasks
from transfers.models import SftpAccount, Transfer
from transfers.queueing import queue_send
from transfers.sftp import EndpointRefused, EndpointUnresolved, probe_host_key
from transfers.simulator import Registry

# portal/settings.py's default: Serviceplatformen's published names and the local simulator.
DEFAULT = [
    "sftp.serviceplatformen.dk:22",
    "sftpexttest.serviceplatformen.dk:22",
    "127.0.0.1:2222",
]


@pytest.fixture
def default_list(settings):
    settings.SFTP_ALLOWED_HOSTS = DEFAULT


@pytest.fixture
def english(client, settings):
    # The messages are checked in English: the Danish catalogue is translated separately.
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"


@pytest.fixture
def no_connection(monkeypatch):
    """Fails the test on any TCP connection or name lookup made in this process."""
    made = []

    def refuse(*args, **kwargs):
        made.append(args)
        raise AssertionError(f"a connection or lookup was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return made


def free_port() -> int:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return closed.getsockname()[1]


@contextmanager
def listener():
    """A TCP port that accepts and never speaks: open, but no SSH."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def never_accepted(sock: socket.socket) -> bool:
    sock.settimeout(0.3)
    try:
        sock.accept()[0].close()
    except TimeoutError:
        return True
    return False


def ssh_server(tmp_path):
    """The simulator in a thread on a free loopback port: an SSH server that answers."""
    return running_simulator(tmp_path / "sp", Registry())


def neutral(message: str, host: str, port: int) -> str:
    """The message with the endpoint taken out: what must not differ between targets."""
    return message.replace(endpoints.endpoint_text(host, port), "ENDPOINT")


# -- (a) the form and the probe view give one answer whatever listens -------------------------


def post_account(client, system, host: str, port: int | str = ""):
    return client.post(
        reverse("transfers:account_create"),
        {
            "it_system": system.pk,
            "environment": "exttest",
            "username": "alfa_omsorg",
            "host": host,
            "port": port,
        },
    )


def test_the_account_form_refuses_a_host_outside_the_list_with_one_message(
    default_list, english, client_for, staff_a, system_a, no_connection
):
    client = client_for(staff_a)
    answers = []
    for port in (8000, 1):
        response = post_account(client, system_a, "127.0.0.1", port)
        assert response.status_code == 200
        [message] = response.context["form"].errors["host"]
        assert f"127.0.0.1:{port}" in message
        answers.append(neutral(message, "127.0.0.1", port))
    assert answers[0] == answers[1]
    assert "SFTP_ALLOWED_HOSTS" in answers[0]
    assert "Serviceplatformen" in answers[0]
    assert not SftpAccount.objects.exists()
    assert no_connection == []


def test_the_account_form_message_goes_through_the_translations(
    default_list, client_for, staff_a, system_a, monkeypatch
):
    """The portal's own language (Danish) is the one used, not hard-coded English."""
    seen = []
    monkeypatch.setattr(
        endpoints, "gettext", lambda text: seen.append(translation.get_language()) or text
    )
    post_account(client_for(staff_a), system_a, "127.0.0.1", 8000)
    assert seen == ["da"]


def test_an_empty_host_takes_the_environments_endpoint_which_the_list_allows(
    default_list, client_for, staff_a, system_a, no_connection
):
    response = post_account(client_for(staff_a), system_a, "")
    assert response.status_code == 302
    account = SftpAccount.objects.get()
    assert (account.host, account.port) == ("sftpexttest.serviceplatformen.dk", 22)


def test_an_environment_whose_endpoint_is_not_allowed_is_told_at_the_environment(
    settings, english, client_for, staff_a, system_a
):
    settings.SFTP_ALLOWED_HOSTS = ["sftp.serviceplatformen.dk:22"]
    response = post_account(client_for(staff_a), system_a, "")
    assert response.status_code == 200
    [message] = response.context["form"].errors["environment"]
    assert "sftpexttest.serviceplatformen.dk:22" in message
    assert not SftpAccount.objects.exists()


@contextmanager
def target(kind: str, tmp_path):
    """(port, listening socket or None) of an open, a closed or an SSH port on loopback."""
    if kind == "open":
        with listener() as sock:
            yield sock.getsockname()[1], sock
    elif kind == "closed":
        yield free_port(), None
    else:
        with ssh_server(tmp_path) as sim:
            yield sim.port, None


def probe(client, account: SftpAccount) -> list[str]:
    """The messages the account's page shows after "probe host key"."""
    response = client.post(reverse("transfers:account_probe", args=[account.pk]), follow=True)
    assert response.redirect_chain == [(reverse("transfers:account", args=[account.pk]), 302)]
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.mark.system
def test_the_probe_gives_one_answer_for_open_closed_and_ssh_ports(
    default_list, english, client_for, staff_a, system_a, tmp_path, monkeypatch
):
    account = engine.account(system_a, "alfa_omsorg", None, host="127.0.0.1", host_key="")
    client = client_for(staff_a)
    connections = []
    real_connect = socket.create_connection
    monkeypatch.setattr(
        socket,
        "create_connection",
        lambda *args, **kwargs: connections.append(args) or real_connect(*args, **kwargs),
    )
    answers = {}
    for kind in ("open", "closed", "ssh"):
        with target(kind, tmp_path) as (port, sock):
            SftpAccount.objects.filter(pk=account.pk).update(port=port)
            [message] = probe(client, account)
            assert endpoints.endpoint_text("127.0.0.1", port) in message
            answers[kind] = neutral(message, "127.0.0.1", port)
            if sock is not None:
                assert never_accepted(sock)
    assert connections == []
    assert answers["open"] == answers["closed"] == answers["ssh"]
    assert "SFTP_ALLOWED_HOSTS" in answers["open"]
    assert "did not answer" not in answers["open"]
    account.refresh_from_db()
    assert account.offered_host_key == ""


@pytest.mark.system
def test_the_probe_still_reads_the_key_of_an_allowed_server(
    settings, client_for, staff_a, system_a, tmp_path
):
    with ssh_server(tmp_path) as sim:
        settings.SFTP_ALLOWED_HOSTS = [f"127.0.0.1:{sim.port}"]
        account = engine.account(
            system_a, "alfa_omsorg", None, host="127.0.0.1", port=sim.port, host_key=""
        )
        client_for(staff_a).post(reverse("transfers:account_probe", args=[account.pk]))
    account.refresh_from_db()
    assert account.offered_host_key_fingerprint == sim.fingerprint


# -- (b) the default list ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, port",
    [
        ("sftp.serviceplatformen.dk", 22),
        ("sftpexttest.serviceplatformen.dk", 22),
        ("SFTP.Serviceplatformen.DK.", 22),  # names compare without case and trailing dot
        ("127.0.0.1", 2222),
    ],
)
def test_the_default_list_allows_the_published_names_and_the_simulator(
    default_list, no_connection, host, port
):
    assert endpoints.is_allowed(host, port)


@pytest.mark.parametrize(
    "host, port",
    [
        ("sftp.serviceplatformen.dk", 2200),
        ("127.0.0.1", 22),
        ("127.0.0.1", 8000),
        ("localhost", 22),
        ("sftp.serviceplatformen.dk.evil.example", 22),
        ("10.0.0.1", 22),
        ("127.0.0.1", 70000),
    ],
)
def test_the_default_list_refuses_anything_else_without_a_lookup(
    default_list, no_connection, host, port
):
    assert not endpoints.is_allowed(host, port)
    with pytest.raises(EndpointRefused) as refused:
        probe_host_key(host, port, timeout=1)
    assert (refused.value.host, refused.value.port) == (host, port)


def test_a_name_on_the_simulators_port_is_checked_by_its_addresses(default_list, monkeypatch):
    """127.0.0.1:2222 is an address entry: a name is allowed there if it resolves to it alone."""
    real_lookup = socket.getaddrinfo
    answers = {"sim.example": "127.0.0.1", "elsewhere.example": "192.0.2.1"}
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *args, **kwargs: real_lookup(answers[host], port, *args, **kwargs),
    )
    assert endpoints.addresses_for("sim.example", 2222) == ("127.0.0.1",)
    assert endpoints.addresses_for("elsewhere.example", 2222) == ()
    assert endpoints.addresses_for("sim.example", 2223) == ()


def test_a_name_that_cannot_be_looked_up_is_told_as_the_refusal(
    default_list, english, client_for, staff_a, system_a, monkeypatch
):
    """Whether a name exists is not the probe's to tell; a send retries it like a network fault."""

    def no_answer(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    account = engine.account(
        system_a, "alfa_omsorg", None, host="intern.example", port=2222, host_key=""
    )
    assert probe(client_for(staff_a), account) == [
        endpoints.refusal_message("intern.example", 2222)
    ]
    with pytest.raises(EndpointUnresolved) as unresolved:
        probe_host_key("intern.example", 2222, timeout=1)
    assert not isinstance(unresolved.value, EndpointRefused)  # tasks retry it, as any SftpError
    assert not endpoints.is_allowed("intern.example", 2222)


def test_the_portals_default_is_the_documented_one():
    from portal import settings as production

    if "SFTP_ALLOWED_HOSTS" in os.environ:
        pytest.skip("SFTP_ALLOWED_HOSTS is set in this environment")
    published = ["sftp.serviceplatformen.dk:22", "sftpexttest.serviceplatformen.dk:22"]
    simulator = f"{production.SIMULATOR_HOST}:{production.SIMULATOR_PORT}"
    assert [*published, simulator] == production.SFTP_ALLOWED_HOSTS


# -- (c) addresses and networks ------------------------------------------------------------------


def test_an_ipv4_network_allows_its_addresses_on_its_port(settings, no_connection):
    settings.SFTP_ALLOWED_HOSTS = ["10.0.0.0/8:22"]
    assert endpoints.addresses_for("10.1.2.3", 22) == ("10.1.2.3",)
    assert endpoints.addresses_for("10.1.2.3", 2222) == ()
    assert endpoints.addresses_for("11.0.0.1", 22) == ()
    # The same address written as IPv4-mapped IPv6 is the same address, in or out.
    assert endpoints.addresses_for("::ffff:10.1.2.3", 22) == ("10.1.2.3",)
    assert endpoints.addresses_for("::ffff:11.0.0.1", 22) == ()


def test_ipv6_entries_are_written_in_brackets(settings, no_connection):
    settings.SFTP_ALLOWED_HOSTS = ["[fd00::/8]:*", "[::1]"]
    assert endpoints.addresses_for("fd12:3456::1", 4022) == ("fd12:3456::1",)
    assert endpoints.addresses_for("[fd12:3456::1]", 22) == ("fd12:3456::1",)
    assert endpoints.addresses_for("fe80::1", 22) == ()
    assert endpoints.addresses_for("::1", 22) == ("::1",)
    assert endpoints.addresses_for("::1", 2222) == ()
    assert endpoints.endpoint_text("::1", 2222) == "[::1]:2222"


@pytest.mark.system
def test_a_name_resolving_into_an_allowed_network_connects_to_the_checked_address(
    settings, tmp_path
):
    settings.SFTP_ALLOWED_HOSTS = ["127.0.0.0/8:*", "[::1]:*"]
    checked = endpoints.addresses_for("localhost", 2222)
    assert checked and set(checked) <= {"127.0.0.1", "::1"}
    with ssh_server(tmp_path) as sim:
        offered = probe_host_key("localhost", sim.port, timeout=5)
    assert offered.split()[1] == sim.host_key.get_base64()


@pytest.mark.system
def test_a_name_is_looked_up_once_so_a_second_answer_cannot_redirect_it(
    settings, tmp_path, monkeypatch
):
    """DNS rebinding: the name answers an allowed address for the check and another one after;
    the connection goes to the address that was checked."""
    settings.SFTP_ALLOWED_HOSTS = ["127.0.0.0/8:*"]
    real_lookup, real_connect = socket.getaddrinfo, socket.create_connection
    lookups, connections = [], []

    def lookup(host, port, *args, **kwargs):
        if host == "sftp.rebinding.example":
            lookups.append(host)
            answer = "127.0.0.1" if len(lookups) == 1 else "192.0.2.1"
            return real_lookup(answer, port, *args, **kwargs)
        return real_lookup(host, port, *args, **kwargs)

    def connect(address, *args, **kwargs):
        connections.append(address[0])
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket, "create_connection", connect)
    with ssh_server(tmp_path) as sim:
        offered = probe_host_key("sftp.rebinding.example", sim.port, timeout=5)
    assert offered.split()[1] == sim.host_key.get_base64()
    assert lookups == ["sftp.rebinding.example"]
    assert connections == ["127.0.0.1"]


def test_a_name_with_one_address_outside_the_networks_is_refused(settings, monkeypatch):
    settings.SFTP_ALLOWED_HOSTS = ["127.0.0.0/8:*"]
    real_lookup = socket.getaddrinfo

    def lookup(host, port, *args, **kwargs):
        return real_lookup("127.0.0.1", port, *args, **kwargs) + real_lookup(
            "192.0.2.1", port, *args, **kwargs
        )

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    assert endpoints.addresses_for("split.example", 22) == ()
    with pytest.raises(EndpointRefused):
        probe_host_key("split.example", 22, timeout=1)


# -- (d) a malformed list stops the portal instead of guessing ---------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        "10.1.0.0/8",  # host bits set: 10.0.0.0/8 or 10.1.0.0/16?
        "sftp.example.dk:22x",
        "sftp.example.dk:0",
        "sftp.example.dk:70000",
        "sftp.example.dk:",
        "::1",  # IPv6 without brackets
        "fd00::/8:22",
        "[not-an-address]:22",
        "10.0.0.256",
        "10.0.0",
        "*",
        "*.serviceplatformen.dk",
        "sftp example.dk",
        "",
    ],
)
def test_a_malformed_entry_is_named(settings, entry):
    settings.SFTP_ALLOWED_HOSTS = ["sftp.serviceplatformen.dk:22", entry]
    with pytest.raises(ImproperlyConfigured) as malformed:
        endpoints.allowed_endpoints()
    assert repr(entry) in str(malformed.value)
    # Not a silent refusal either: a connection attempt stops on the same error.
    with pytest.raises(ImproperlyConfigured):
        probe_host_key("sftp.serviceplatformen.dk", 22, timeout=1)
    [error] = endpoints.check_allowed_hosts()
    assert error.id == "transfers.E001"
    assert repr(entry) in error.msg


def test_a_bare_string_is_not_read_letter_by_letter(settings):
    settings.SFTP_ALLOWED_HOSTS = "127.0.0.1:*"
    with pytest.raises(ImproperlyConfigured, match="must be a list"):
        endpoints.allowed_endpoints()


def test_the_system_check_passes_a_good_list_and_warns_of_an_empty_one(settings):
    settings.SFTP_ALLOWED_HOSTS = [*DEFAULT, "10.0.0.0/8", "[fd00::/8]:*", "sftp.example.dk.:*"]
    assert endpoints.check_allowed_hosts() == []
    settings.SFTP_ALLOWED_HOSTS = []
    [warning] = endpoints.check_allowed_hosts()
    assert warning.id == "transfers.W001"


# -- (e) a send to a refused endpoint fails plainly, once -------------------------------------


def test_a_send_to_an_endpoint_not_allowed_fails_with_the_refusal_and_no_retry(
    settings, ready_route, staff_a
):
    ready = ready_route()
    sim, route = ready.sim, ready.route
    transfer = queue_send(route, io.BytesIO(b"a;b\r\n"), original_name="x.csv", user=staff_a)
    settings.SFTP_ALLOWED_HOSTS = DEFAULT  # the simulator's free port is not 2222
    assert tasks.send_transfer(transfer.pk) == "failed"
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.FAILED
    assert transfer.attempts == 1
    assert transfer.last_error == endpoints.refusal_message("127.0.0.1", sim.port)
    assert not Schedule.objects.filter(name__startswith=f"transfer-retry-{transfer.pk}-").exists()
    outgoing = sim.data_dir / "alfa_omsorg" / "OUT"
    assert not outgoing.exists() or not any(outgoing.iterdir())
