import uuid

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import translation

from portal.accounts.models import Membership, Organisation
from portal.accounts.municipalities import load_reference_organisations
from portal.itsystems.models import ItSystem

PASSWORD = "correct horse battery staple"


def make_user(username: str, organisation: Organisation | None = None, **extra):
    extra.setdefault("email", f"{username}@example.invalid")
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)
    if organisation is not None:
        Membership.objects.create(user=user, organisation=organisation)
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
