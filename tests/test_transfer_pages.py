"""The pages behind SFTP accounts and routes: who may register, order and establish."""

import pytest
from django.urls import reverse

from portal.onboarding import rules
from transfers.models import Route, SftpAccount


def test_an_account_gets_its_environments_host_unless_given_one(client_for, staff_a, system_a):
    client = client_for(staff_a)
    assert client.get(reverse("transfers:account_create")).status_code == 200
    response = client.post(
        reverse("transfers:account_create"),
        {"it_system": system_a.pk, "environment": "exttest", "username": "alfa_omsorg"},
    )
    account = SftpAccount.objects.get()
    assert response["Location"] == reverse("transfers:account", args=[account.pk])
    assert (account.host, account.port) == ("sftpexttest.serviceplatformen.dk", 22)


@pytest.mark.parametrize("username", [".hidden", "..", "a/b", "æøå", ""])
def test_unsafe_sftp_user_names_are_refused(client_for, staff_a, system_a, username):
    response = client_for(staff_a).post(
        reverse("transfers:account_create"),
        {"it_system": system_a.pk, "environment": "simulator", "username": username},
    )
    assert response.status_code == 200
    assert not SftpAccount.objects.exists()


@pytest.fixture
def integration(staff_a, system_a, system_b, aarhus):
    return rules.create_integration(
        name="Ruter",
        sender=system_a,
        receiver=system_b,
        created_by=staff_a,
        municipalities=[aarhus],
    )


def test_a_route_must_agree_with_its_integration(
    client_for, staff_a, integration, odense, system_a, system_b
):
    response = client_for(staff_a).post(
        reverse("transfers:route_create"),
        {
            "environment": "simulator",
            "integration": integration.pk,
            "sender": system_a.pk,
            "receiver": system_b.pk,
            "municipality": odense.pk,
        },
    )
    assert response.status_code == 200
    assert "Kommunen er ikke med i integrationen." in response.content.decode()
    assert not Route.objects.exists()


def test_only_kombit_establishes_a_route(
    client_for, staff_a, operator, integration, aarhus, system_a, system_b
):
    from gdpr.models import InfRef

    infref = InfRef.objects.create(
        name="FagsystemdefineredeDataRefGDPR9_1", it_system=system_a, assigned_by=operator
    )
    route = Route.objects.create(
        environment="simulator",
        infref=infref,
        sender=system_a,
        receiver=system_b,
        municipality=aarhus,
        integration=integration,
    )
    url = reverse("transfers:route_state", args=[route.pk])
    assert client_for(staff_a).post(url, {"state": "established"}).status_code == 403
    client_for(operator).post(url, {"state": "established"})
    route.refresh_from_db()
    assert route.state == Route.State.ESTABLISHED
