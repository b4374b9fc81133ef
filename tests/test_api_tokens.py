"""API tokens: made on the IT system's page and shown once, stored hashed, expired, revoked."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from handoff import tokens
from handoff.models import ApiToken
from portal.accounts import access
from portal.audit.models import AuditEvent
from tests.support.handoff_setup import bearer, token_for

ROUTES = "/api/v1/routes"


def test_a_token_is_stored_only_as_its_sha256(system_a, staff_a):
    plain = token_for(system_a, staff_a)
    token = ApiToken.objects.get()
    assert plain.startswith("fdd_") and len(plain) > 40
    assert token.digest == hashlib.sha256(plain.encode()).hexdigest()
    assert plain not in {token.prefix, token.digest, token.name}
    assert plain.startswith(token.prefix) and len(token.prefix) == 12


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "token_missing"),
        ({"HTTP_AUTHORIZATION": "Basic dXNlcjpwdw=="}, "token_malformed"),
        ({"HTTP_AUTHORIZATION": "Bearer"}, "token_malformed"),
        ({"HTTP_AUTHORIZATION": "Bearer fdd_not-a-token"}, "token_unknown"),
    ],
)
def test_a_call_without_a_usable_token_is_refused_clearly(client, db, headers, code):
    response = client.get(ROUTES, **headers)
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_refused(client, system_a, staff_a):
    plain = token_for(system_a, staff_a)
    assert client.get(ROUTES, **bearer(plain)).status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(ROUTES, **bearer(plain))
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"
    assert "expired at" in response.json()["detail"]


def test_a_revoked_token_is_refused_at_once(client, system_a, staff_a):
    plain = token_for(system_a, staff_a)
    assert client.get(ROUTES, **bearer(plain)).status_code == 200
    assert tokens.revoke(ApiToken.objects.get(), staff_a)
    assert not tokens.revoke(ApiToken.objects.get(), staff_a)  # once is enough
    response = client.get(ROUTES, **bearer(plain))
    assert (response.status_code, response.json()["code"]) == (401, "token_revoked")


def test_use_is_recorded(client, system_a):
    plain = token_for(system_a)
    client.get(ROUTES, **bearer(plain))
    assert ApiToken.objects.get().last_used_at is not None


def test_staff_make_a_token_that_is_shown_once(client_for, staff_a, system_a):
    client = client_for(staff_a)
    url = reverse("handoff:tokens", args=[system_a.pk])
    page = client.post(url, {"name": "Nightly export", "valid_days": "30"})
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    shown = re.search(r"fdd_[A-Za-z0-9_-]{43}", page.content.decode()).group(0)
    token = ApiToken.objects.get()
    assert token.digest == tokens.digest(shown)
    assert (token.name, token.created_by) == ("Nightly export", staff_a)
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    event = AuditEvent.objects.get(action=tokens.CREATED)
    assert event.actor == staff_a and event.object_id == str(token.pk)

    again = client.get(url).content.decode()
    assert shown not in again  # listed by its first characters only
    assert token.prefix in again

    client.post(reverse("handoff:token_revoke", args=[system_a.pk, token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == staff_a
    assert AuditEvent.objects.filter(action=tokens.REVOKED).count() == 1


def test_only_those_who_may_change_the_it_system_reach_its_tokens(
    client_for, staff_b, operator, system_a
):
    url = reverse("handoff:tokens", args=[system_a.pk])
    assert client_for(staff_b).get(url).status_code == 404  # another vendor: not there
    client = client_for(operator)
    client.force_login(operator)
    response = client.get(url)
    # KOMBIT reads the register but does not act for the vendor; the security work may send
    # the operator to a two-factor page first.
    assert response.status_code in (302, 403)
    assert ApiToken.objects.count() == 0


def test_a_token_acts_for_the_it_systems_vendor_of_today(client, system_a, vendor_b):
    plain = token_for(system_a)
    principal = tokens.TokenPrincipal(tokens.check(plain))
    assert access.scope_of(principal).vendor_ids == {system_a.vendor_id}
    system_a.vendor = vendor_b
    system_a.save()
    principal = tokens.TokenPrincipal(tokens.check(plain))
    assert access.scope_of(principal).vendor_ids == {vendor_b.pk}
