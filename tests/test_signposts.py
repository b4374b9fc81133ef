"""Signposts from one step to the next: the route form filled from the integration, the route
list saying who acts next, and the IT system page leading into onboarding."""

import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from gdpr import workflow
from portal.itsystems.models import ItSystem
from portal.onboarding import rules
from transfers.models import Route


@pytest.fixture
def integration(staff_a, system_a, system_b, aarhus, odense):
    return rules.create_integration(
        name="Alfa Omsorg → Beta Journal",
        sender=system_a,
        receiver=system_b,
        created_by=staff_a,
        municipalities=[aarhus, odense],
        legal_basis="Serviceloven § 83.",
        legal_basis_reviewed_on=timezone.localdate(),
    )


@pytest.fixture
def infref(integration, staff_a, operator):
    request = workflow.request_infref(it_system=integration.sender, description="x", user=staff_a)
    return workflow.assign_infref(request, name="FagsystemdefineredeDataRefGDPR77_1", user=operator)


@pytest.fixture
def linked(integration, infref):
    integration.infref = infref
    integration.save()
    return integration


def english(client):
    client.cookies["django_language"] = "en"
    return client


def route(integration, municipality, **fields) -> Route:
    return Route.objects.create(
        environment=fields.pop("environment", "production"),
        infref=integration.infref,
        sender=integration.sender,
        receiver=integration.receiver,
        municipality=municipality,
        integration=integration,
        **fields,
    )


# --- The route form ----------------------------------------------------------------------------


def test_the_route_form_is_filled_from_the_integration_and_municipality(
    client_for, staff_a, linked, odense
):
    response = client_for(staff_a).get(
        reverse("transfers:route_create"), {"integration": linked.pk, "municipality": odense.pk}
    )
    form = response.context["form"]
    assert {name: form[name].value() for name in form.fields if form[name].value()} == {
        "environment": "production",
        "integration": linked.pk,
        "infref": linked.infref_id,
        "sender": linked.sender_id,
        "receiver": linked.receiver_id,
        "municipality": odense.pk,
    }


def test_the_external_test_route_is_asked_for_by_name(client_for, staff_a, linked, aarhus):
    form = (
        client_for(staff_a)
        .get(
            reverse("transfers:route_create"),
            {"integration": linked.pk, "municipality": aarhus.pk, "environment": "exttest"},
        )
        .context["form"]
    )
    assert form["environment"].value() == "exttest"


@pytest.mark.parametrize("value", ["x", "-1", "99999999999999999999999", ""])
def test_a_malformed_parameter_prefills_nothing(client_for, staff_a, linked, value):
    response = client_for(staff_a).get(
        reverse("transfers:route_create"), {"integration": value, "municipality": value}
    )
    assert response.status_code == 200
    assert response.context["form"].initial == {}


def test_another_vendors_integration_is_not_prefilled(client_for, staff_b, linked, vendor_b):
    response = client_for(staff_b).get(
        reverse("transfers:route_create"), {"integration": linked.pk}
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert form["integration"].value() is None
    assert str(linked.infref) not in response.content.decode()


def test_an_order_with_only_the_integration_takes_the_rest_from_it(
    client_for, staff_a, linked, aarhus
):
    client = english(client_for(staff_a))
    response = client.post(
        reverse("transfers:route_create"),
        {"environment": "production", "integration": linked.pk, "municipality": aarhus.pk},
        follow=True,
    )
    ordered = Route.objects.get()
    assert (ordered.infref, ordered.sender, ordered.receiver, ordered.municipality) == (
        linked.infref,
        linked.sender,
        linked.receiver,
        aarhus,
    )
    assert ordered.state == Route.State.ORDERED
    assert response.redirect_chain == [(reverse("transfers:routes"), 302)]
    html = response.content.decode()
    assert "KOMBIT establishes it on Serviceplatformen next" in html
    # Task 70 for Aarhus follows the ordered route.
    assert linked.tasks.get(number=70, municipality=aarhus).state == "in_progress"


def test_an_integration_without_infref_says_so_instead_of_required(
    client_for, staff_a, integration, aarhus
):
    response = english(client_for(staff_a)).post(
        reverse("transfers:route_create"),
        {"environment": "production", "integration": integration.pk, "municipality": aarhus.pk},
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["infref"]
    assert "The integration has no InfRef yet" in errors["infref"][0]
    assert not Route.objects.exists()


def test_a_value_that_differs_from_the_integration_is_still_refused(
    client_for, staff_a, linked, aarhus, vendor_a
):
    other = ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Alfa Sag", vendor=vendor_a, is_sender=True
    )
    response = english(client_for(staff_a)).post(
        reverse("transfers:route_create"),
        {
            "environment": "production",
            "integration": linked.pk,
            "sender": other.pk,
            "municipality": aarhus.pk,
        },
    )
    assert response.context["form"].errors["sender"] == ["It does not match the integration."]
    assert not Route.objects.exists()


def test_without_an_integration_the_three_are_required(client_for, staff_a, aarhus, infref):
    response = english(client_for(staff_a)).post(
        reverse("transfers:route_create"),
        {"environment": "production", "infref": infref.pk, "municipality": aarhus.pk},
    )
    errors = response.context["form"].errors
    assert set(errors) == {"sender", "receiver"}
    assert errors["sender"] == ["This field is required."]
    assert not Route.objects.exists()


# --- The route list ----------------------------------------------------------------------------

KOMBIT_NEXT = "KOMBIT establishes the route on Serviceplatformen."


@pytest.mark.parametrize("user_fixture", ["staff_a", "staff_b", "architect"])
def test_an_ordered_route_says_kombit_acts_next(request, client_for, user_fixture, linked, aarhus):
    route(linked, aarhus)
    html = english(client_for(request.getfixturevalue(user_fixture))).get(
        reverse("transfers:routes")
    )
    assert KOMBIT_NEXT in html.content.decode()


def test_kombit_gets_the_establish_form_instead(client_for, operator, linked, aarhus):
    ordered = route(linked, aarhus)
    html = english(client_for(operator)).get(reverse("transfers:routes")).content.decode()
    assert KOMBIT_NEXT not in html
    assert reverse("transfers:route_state", args=[ordered.pk]) in html


def test_an_established_route_says_nothing_of_kombit(client_for, staff_a, linked, aarhus):
    route(linked, aarhus, state=Route.State.ESTABLISHED)
    html = english(client_for(staff_a)).get(reverse("transfers:routes")).content.decode()
    assert KOMBIT_NEXT not in html


def test_a_suspended_route_says_it_was_suspended(client_for, staff_a, linked, aarhus):
    route(linked, aarhus, state=Route.State.SUSPENDED)
    html = english(client_for(staff_a)).get(reverse("transfers:routes")).content.decode()
    assert "The route was suspended on" in html
    assert KOMBIT_NEXT not in html


def test_the_list_shows_the_routes_in_one_state(client_for, operator, linked, aarhus, odense):
    ordered = route(linked, aarhus)
    established = route(linked, odense, state=Route.State.ESTABLISHED)
    client = client_for(operator)
    rows = client.get(reverse("transfers:routes"), {"state": "ordered"}).context["rows"]
    assert [r for r, _blockers in rows] == [ordered]
    rows = client.get(reverse("transfers:routes"), {"state": "established"}).context["rows"]
    assert [r for r, _blockers in rows] == [established]
    # An unknown state filters nothing.
    rows = client.get(reverse("transfers:routes"), {"state": "nonsense"}).context["rows"]
    assert len(rows) == 2


# --- The IT system page ------------------------------------------------------------------------


def test_the_vendor_requests_an_infref_and_creates_integrations_from_the_it_system(
    client_for, staff_a, system_a
):
    client = english(client_for(staff_a))
    html = client.get(reverse("itsystems:detail", args=[system_a.pk])).content.decode()
    request_url = f"{reverse('gdpr:request_create')}?it_system={system_a.pk}"
    assert f'href="{request_url}"' in html
    assert f'href="{reverse("onboarding:create")}?sender={system_a.pk}"' in html
    assert client.get(request_url).status_code == 200
    assert client.get(f"{reverse('onboarding:create')}?sender={system_a.pk}").status_code == 200


def test_once_requested_the_page_links_to_the_request_instead(
    client_for, staff_a, operator, system_a
):
    request = workflow.request_infref(it_system=system_a, description="x", user=staff_a)
    client = english(client_for(staff_a))
    html = client.get(reverse("itsystems:detail", args=[system_a.pk])).content.decode()
    assert reverse("gdpr:request_create") not in html
    assert reverse("gdpr:request", args=[request.pk]) in html
    assert "waits for KOMBIT" in html
    workflow.assign_infref(request, name="FagsystemdefineredeDataRefGDPR77_1", user=operator)
    html = client.get(reverse("itsystems:detail", args=[system_a.pk])).content.decode()
    assert "KOMBIT has assigned the InfRef FagsystemdefineredeDataRefGDPR77_1." in html


def test_the_page_lists_the_integrations_and_infrefs_with_links(
    client_for, staff_a, staff_b, linked, system_a, system_b
):
    html = client_for(staff_a).get(reverse("itsystems:detail", args=[system_a.pk]))
    html = html.content.decode()
    assert reverse("onboarding:detail", args=[linked.pk]) in html
    assert reverse("gdpr:request", args=[linked.infref.request.pk]) in html
    # The receiving vendor sees the integration its system receives in, and starts nothing.
    html = client_for(staff_b).get(reverse("itsystems:detail", args=[system_b.pk]))
    html = html.content.decode()
    assert reverse("onboarding:detail", args=[linked.pk]) in html
    assert reverse("gdpr:request_create") not in html
    assert reverse("onboarding:create") not in html


def test_kombit_reads_the_lists_but_starts_nothing(client_for, operator, linked, system_a):
    html = client_for(operator).get(reverse("itsystems:detail", args=[system_a.pk]))
    html = html.content.decode()
    assert reverse("onboarding:detail", args=[linked.pk]) in html
    assert reverse("gdpr:request_create") not in html
    assert reverse("onboarding:create") not in html


def test_the_account_form_is_filled_from_the_tasks_link(client_for, staff_a, system_a, system_b):
    url = reverse("transfers:account_create")
    page = client_for(staff_a).get(url, {"it_system": system_a.pk}).content.decode()
    assert f'<option value="{system_a.pk}" selected>' in page
    # Another vendor's IT system, or no number, prefills nothing.
    for value in (system_b.pk, "x"):
        page = client_for(staff_a).get(url, {"it_system": value}).content.decode()
        assert '<option value="" selected>' in page
