import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.utils import translation

import gdpr.mail
from portal.accounts.models import Membership, Organisation
from portal.accounts.municipalities import load_reference_organisations
from portal.itsystems.models import ItSystem
from tests.support import engine, system
from tests.support.smtp import Recorder, local_smtp_server
from tests.support.sshd import running_sshd
from transfers import sessions

PASSWORD = "correct horse battery staple"


def pytest_configure(config: pytest.Config) -> None:
    system.install()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("browser") or system.SYSTEM_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.system)


@pytest.hookimpl(tryfirst=True)  # before the fixtures, module-scoped ones too, are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    system.watch(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        if started := system.watch(None):
            pytest.fail(
                f"{item.nodeid} started {'; '.join(started)}, but is not marked "
                "@pytest.mark.system: `-m 'not system'` would run it",
                pytrace=False,
            )


def make_user(username: str, organisation: Organisation | None = None, **extra):
    extra.setdefault("email", f"{username}@example.invalid")
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)
    if organisation is not None:
        Membership.objects.create(user=user, organisation=organisation)
    return user


def make_administrator(username: str, organisation, **extra):
    """A member who administers `organisation`'s people."""
    user = make_user(username, organisation, **extra)
    Membership.objects.filter(user=user, organisation=organisation).update(is_administrator=True)
    return user


@pytest.fixture
def vendor_a(db):
    return Organisation.objects.create(kind="vendor", name="Alfa Software A/S", cvr="39123452")


@pytest.fixture
def vendor_b(db):
    return Organisation.objects.create(kind="vendor", name="Beta Data ApS", cvr="41872632")


@pytest.fixture(autouse=True)
def portal_language():
    """Each test starts in the portal's language: a request made by the test client leaves the
    language it negotiated active in the thread, and the next test would inherit it."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    """Each test starts with an empty cache, as it does with an empty database. The cache is a
    folder of the test process, shared with the workers it starts: a stopped worker cluster's
    heartbeat stays there for seconds after it, and a later test's health check counted it as a
    running cluster; a queued task's mark would keep the next test from queueing its own."""
    for alias in settings.CACHES:
        caches[alias].clear()


@pytest.fixture(autouse=True)
def reference_organisations(request):
    """The municipalities and KOMBIT, which a transactional test's flush removes."""
    uses_database = request.node.get_closest_marker("django_db") or {
        "db",
        "transactional_db",
    } & set(request.fixturenames)
    if not uses_database:
        return
    request.getfixturevalue("_django_db_helper")
    if not Organisation.objects.filter(kind="kombit").exists():
        load_reference_organisations(Organisation)


@pytest.fixture
def aarhus(db):
    return Organisation.objects.get(municipality_code="751")


@pytest.fixture
def odense(db):
    return Organisation.objects.get(municipality_code="461")


@pytest.fixture
def kombit(db):
    return Organisation.objects.get(kind="kombit")


@pytest.fixture
def system_a(vendor_a):
    return ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Alfa Omsorg", vendor=vendor_a, is_sender=True
    )


@pytest.fixture
def system_b(vendor_b):
    return ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Beta Journal", vendor=vendor_b, is_receiver=True
    )


@pytest.fixture
def staff_a(vendor_a):
    return make_user("staff-a", vendor_a, first_name="Ada")


@pytest.fixture
def staff_b(vendor_b):
    return make_user("staff-b", vendor_b, first_name="Bo")


@pytest.fixture
def architect(aarhus):
    return make_user("architect-aarhus", aarhus)


@pytest.fixture
def operator(kombit):
    return make_user("operator", kombit)


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root", "root@example.invalid", PASSWORD)


@pytest.fixture
def client_for(client):
    """A test client logged in as the given user."""

    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def smtp_server(settings) -> Iterator[Recorder]:
    """A real SMTP server on a loopback port (tests/support/smtp.py), Django's mail sent to it."""
    with local_smtp_server(settings) as recorder:
        yield recorder


@pytest.fixture(scope="module")
def chromium_browser():
    """One Chromium for the whole module; each test opens its own context (its own cookies)."""
    # Imported here: Playwright is loaded by the tests that run a browser, not by every run.
    from tests.support.browser import chromium

    with chromium() as browser:
        yield browser


_DECLARATION_PDF: list[bytes] = []


@pytest.fixture
def one_declaration_pdf(monkeypatch):
    """The demo data mails three declaration PDFs per test; one real rendering serves them all.

    The pages under test are HTML; WeasyPrint's seconds per test are better spent elsewhere.
    """
    render = gdpr.mail.render_declaration_pdf

    def render_once(declaration):
        if not _DECLARATION_PDF:
            _DECLARATION_PDF.append(render(declaration))
        return _DECLARATION_PDF[0]

    monkeypatch.setattr(gdpr.mail, "render_declaration_pdf", render_once)


@pytest.fixture
def ready_route(
    tmp_path, staff_a, operator, system_a, system_b, aarhus, odense
) -> Iterator[Callable[..., engine.ReadyRoute]]:
    """Makes, when the test calls it, an integration from system_a to system_b ready to send on
    a running simulator (tests/support/engine.py), stopped after the test: `ready_route()` for
    Aarhus, `ready_route(municipalities=2)` for Aarhus and Odense (and others by code beyond that);
    keywords of `engine.ready_route` choose other parties, the environment or the accounts."""
    made: list[engine.ReadyRoute] = []
    with contextlib.ExitStack() as running:

        def make(municipalities: int = 1, **choices) -> engine.ReadyRoute:
            assert not made, "one ready route for each test"
            places = [aarhus, odense]
            if municipalities > len(places):
                others = Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY)
                others = others.exclude(pk__in=[aarhus.pk, odense.pk]).order_by("municipality_code")
                places += others[: municipalities - len(places)]
            parties = {
                "staff": staff_a,
                "operator": operator,
                "sender": system_a,
                "receiver": system_b,
                "municipalities": places[:municipalities],
            }
            made.append(running.enter_context(engine.on_simulator(tmp_path, **parties, **choices)))
            return made[0]

        yield make


@pytest.fixture
def receiving_on_sshd(staff_a, operator, system_a, system_b, aarhus):
    """A receiving account on a real OpenSSH sshd (folder, account, route): its IN/ folder on
    this disk, for a test to put in what the platform would deliver."""
    with running_sshd() as sshd:
        folder = sshd.root / "IN"
        folder.mkdir()
        ready = engine.ready_route(
            staff=staff_a,
            operator=operator,
            sender=system_a,
            receiver=system_b,
            municipalities=[aarhus],
            usernames=(engine.SENDER, sshd.username),
            port=sshd.port,
            host_key=sshd.host_key,
        )
        sshd.authorize(ready.receiver.public_key)
        try:
            yield folder, ready.receiver, ready.route
        finally:
            sessions.drop_all_sessions()
