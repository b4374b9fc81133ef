"""Tenant isolation: a user of one organisation cannot read or change another's records."""

import uuid
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django_q.models import Schedule

from handoff import tokens
from portal.accounts import access
from portal.accounts.models import Membership
from portal.itsystems.models import ItSystem
from tests.conftest import make_user
from tests.support.handoff_setup import token_for
from transfers.models import Route, Transfer


def test_vendor_staff_see_only_their_vendors_it_systems(staff_a, system_a, system_b):
    seen = access.visible(staff_a, ItSystem.objects.all())
    assert list(seen) == [system_a]
    assert access.can_change(staff_a, system_a)
    assert not access.can_view(staff_a, system_b)
    assert not access.can_change(staff_a, system_b)


def test_kombit_operators_see_every_it_system_but_change_none(operator, system_a, system_b):
    assert set(access.visible(operator, ItSystem.objects.all())) == {system_a, system_b}
    assert not access.changeable(operator, ItSystem.objects.all()).exists()


def test_municipal_architects_see_no_vendor_it_systems(architect, system_a, system_b):
    assert not access.visible(architect, ItSystem.objects.all()).exists()


def test_superusers_see_and_change_everything(superuser, system_a, system_b):
    assert access.changeable(superuser, ItSystem.objects.all()).count() == 2


def test_anonymous_and_inactive_users_see_nothing(staff_a, system_a):
    from django.contrib.auth.models import AnonymousUser

    assert not access.visible(AnonymousUser(), ItSystem.objects.all()).exists()
    staff_a.is_active = False
    staff_a.save()
    staff_a._access_scope = None
    assert not access.visible(staff_a, ItSystem.objects.all()).exists()


def test_colleagues_are_visible_only_within_the_organisation(staff_a, staff_b, architect):
    memberships = access.visible(staff_a, Membership.objects.all())
    assert {m.user for m in memberships} == {staff_a}


def test_a_model_without_a_rule_is_hidden_from_everyone_but_superusers(staff_a, superuser):
    Schedule.objects.create(func="math.floor", args="1")
    assert not access.visible(staff_a, Schedule.objects.all()).exists()
    assert access.visible(superuser, Schedule.objects.all()).exists()


@pytest.mark.parametrize("name", ["itsystems:detail", "itsystems:edit"])
def test_another_vendors_it_system_is_not_found(client_for, staff_a, system_b, name):
    response = client_for(staff_a).get(reverse(name, args=[system_b.pk]))
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["itsystems:detail", "itsystems:edit"])
def test_guessed_ids_that_do_not_exist_are_not_found_either(client_for, staff_a, system_a, name):
    response = client_for(staff_a).get(reverse(name, args=[system_a.pk + 1000]))
    assert response.status_code == 404


def test_posting_to_another_vendors_it_system_changes_nothing(client_for, staff_a, system_b):
    response = client_for(staff_a).post(
        reverse("itsystems:edit", args=[system_b.pk]),
        {
            "name": "Taken over",
            "uuid": str(system_b.uuid),
            "vendor": staff_a.memberships.get().organisation_id,
            "is_sender": "on",
        },
    )
    assert response.status_code == 404
    system_b.refresh_from_db()
    assert system_b.name == "Beta Journal"


def test_registering_for_another_vendor_is_refused(client_for, staff_a, vendor_b):
    response = client_for(staff_a).post(
        reverse("itsystems:create"),
        {"name": "Smuggled", "uuid": str(uuid.uuid4()), "vendor": vendor_b.pk, "is_sender": "on"},
    )
    assert response.status_code == 200
    assert "vendor" in response.context["form"].errors
    assert not ItSystem.objects.filter(name="Smuggled").exists()


def test_moving_an_it_system_to_another_vendor_is_refused(client_for, staff_a, system_a, vendor_b):
    response = client_for(staff_a).post(
        reverse("itsystems:edit", args=[system_a.pk]),
        {
            "name": system_a.name,
            "uuid": str(system_a.uuid),
            "vendor": vendor_b.pk,
            "is_sender": "on",
        },
    )
    assert response.status_code == 200
    system_a.refresh_from_db()
    assert system_a.vendor_id != vendor_b.pk


def test_kombit_may_read_but_not_edit_an_it_system(client_for, operator, system_a):
    client = client_for(operator)
    assert client.get(reverse("itsystems:detail", args=[system_a.pk])).status_code == 200
    assert client.get(reverse("itsystems:edit", args=[system_a.pk])).status_code == 403
    assert client.get(reverse("itsystems:create")).status_code == 403


def test_architect_cannot_open_vendor_it_systems(client_for, architect, system_a):
    client = client_for(architect)
    assert client.get(reverse("itsystems:detail", args=[system_a.pk])).status_code == 404
    assert system_a.name not in client.get(reverse("itsystems:list")).content.decode()


def test_lists_and_dashboard_show_only_own_records(client_for, staff_a, system_a, system_b):
    client = client_for(staff_a)
    for url in (reverse("dashboard"), reverse("itsystems:list")):
        page = client.get(url).content.decode()
        assert system_a.name in page
        assert system_b.name not in page


def test_members_of_another_organisation_are_not_listed(client_for, staff_a, staff_b, vendor_b):
    page = client_for(staff_a).get(reverse("organisations:detail", args=[vendor_b.pk]))
    assert page.status_code == 200  # names and CVR numbers are public
    assert staff_b.username not in page.content.decode()
    assert "Beta Journal" not in page.content.decode()


def test_members_of_the_own_organisation_are_listed(client_for, staff_a, vendor_a):
    page = client_for(staff_a).get(reverse("organisations:detail", args=[vendor_a.pk]))
    assert "Ada" in page.content.decode()


# --- Named rules: who sends on a route, fetches a sent file's copy, sets a route's state ---------

ALL_STATES = ["ordered", "established", "suspended"]
# Who acts, and what the rules answer them for a route from system_a (vendor A) to system_b
# (vendor B) for Aarhus: may send on it, may fetch a transfer's local copy, states they may set.
RULES_FOR = {
    "sending vendor's staff": ("staff_a", True, ["suspended"]),
    "receiving vendor's staff": ("staff_b", False, []),
    "municipality": ("architect", False, []),
    "KOMBIT": ("operator", False, ALL_STATES),
    "superuser": ("superuser", True, ALL_STATES),
    "sending IT system's token": ("token_a", True, ["suspended"]),
    "receiving IT system's token": ("token_b", False, []),
    "sending vendor's deactivated staff": ("inactive_a", False, []),
}


@pytest.fixture
def route(system_a, system_b, aarhus):
    # Unsaved: the rules decide from the route's sender alone, without a query.
    return Route(sender=system_a, receiver=system_b, municipality=aarhus)


@pytest.fixture
def token_a(system_a):
    return tokens.TokenPrincipal(tokens.check(token_for(system_a)))


@pytest.fixture
def token_b(system_b):
    return tokens.TokenPrincipal(tokens.check(token_for(system_b)))


@pytest.fixture
def inactive_a(vendor_a):
    return make_user("gone-a", vendor_a, is_active=False)


@pytest.mark.parametrize("who", RULES_FOR)
def test_the_named_rules_answer_each_kind_of_actor(request, route, who, django_assert_num_queries):
    fixture, sends, states = RULES_FOR[who]
    actor = request.getfixturevalue(fixture)
    access.scope_of(actor)  # read once a request, as the views do
    with django_assert_num_queries(0):
        assert access.may_send_on(actor, route) is sends
        assert access.may_download_copy(actor, Transfer(route=route)) is sends
        assert access.route_states_settable(actor, route) == states


def test_a_principal_that_carries_its_scope_is_taken_at_its_word(aarhus):
    carried = access.Scope(municipality_ids=frozenset({aarhus.pk}))
    principal = SimpleNamespace(
        is_authenticated=True, is_active=True, is_superuser=False, access_scope=carried
    )
    assert access.scope_of(principal) is carried
    assert access.memberships_of(principal) == []


def test_a_tokens_principal_carries_its_it_systems_vendor(token_a, system_a):
    assert access.scope_of(token_a) == access.Scope(vendor_ids=frozenset({system_a.vendor_id}))
    assert access.memberships_of(token_a) == []
    assert not hasattr(token_a, "_access_scope")  # carried in the open, not in the user's cache
