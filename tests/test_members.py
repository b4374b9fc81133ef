"""Organisations run their own people (issue 18): an administrator changes members' roles,
removes members, closes logins and sets the two-step login requirement; an organisation always
keeps an active administrator; no one else has any say over its people."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts import access, members
from portal.accounts.models import Invitation, Membership
from portal.audit.models import AuditEvent
from tests.conftest import make_administrator, make_user
from tests.support.clients import logged_in, said
from tests.support.totp import confirmed_device

Action = AuditEvent.Action
User = get_user_model()


def membership(user, organisation) -> Membership:
    return Membership.objects.get(user=user, organisation=organisation)


PEOPLE = [
    Action.MEMBER_ROLE_CHANGED,
    Action.MEMBER_REMOVED,
    Action.MEMBER_DEACTIVATED,
    Action.INVITATION_SENT,
    Action.INVITATION_WITHDRAWN,
    Action.INVITATION_ACCEPTED,
    Action.TWO_FACTOR_POLICY,
]


def events(action: str):
    return AuditEvent.objects.filter(action=action)


def no_change_recorded() -> bool:
    """Logins are recorded too (portal.audit.logins); no change to anyone's people is."""
    return not AuditEvent.objects.filter(action__in=PEOPLE).exists()


def member_url(name: str, member: Membership) -> str:
    return reverse(f"organisations:{name}", args=[member.organisation_id, member.pk])


@pytest.fixture
def admin_a(vendor_a):
    return make_administrator("admin-a", vendor_a, first_name="Alma", last_name="Admin")


@pytest.fixture
def admin_b(vendor_b):
    return make_administrator("admin-b", vendor_b, first_name="Bent")


# What an administrator sees ---------------------------------------------------------------------


def test_an_administrator_sees_the_members_role_last_login_and_login_state(
    admin_a, staff_a, vendor_a
):
    closed = make_user("closed-a", vendor_a, first_name="Carl", is_active=False)
    client = logged_in(admin_a)
    client.get(reverse("dashboard"))  # Django records the last login only at a real login
    User.objects.filter(pk=staff_a.pk).update(last_login="2026-03-02T09:15:00+01:00")

    page = client.get(reverse("organisations:detail", args=[vendor_a.pk]))
    assert page.status_code == 200
    assert page.context["administers"]
    rows = {m.user.username: m for m in page.context["members"]}
    assert set(rows) == {"admin-a", "staff-a", "closed-a"}
    html = page.content.decode()
    row = html[html.index(f'id="member-{rows["staff-a"].pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Ada" in row and "Member" in row and "2 Mar 2026 09:15" in row and "Active" in row
    row = html[html.index(f'id="member-{rows["closed-a"].pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Closed" in row and "Never" in row
    assert "Administrator" in html
    for name in ("member_role", "member_remove", "member_deactivate"):
        assert member_url(name, rows["staff-a"]) in html
    assert reverse("organisations:invite", args=[vendor_a.pk]) in html
    assert reverse("organisations:two_factor", args=[vendor_a.pk]) in html
    assert closed.pk  # listed above, closed


def test_a_member_who_is_no_administrator_sees_colleagues_but_no_buttons(
    admin_a, staff_a, vendor_a
):
    page = logged_in(staff_a).get(reverse("organisations:detail", args=[vendor_a.pk]))
    html = page.content.decode()
    assert "Alma Admin" in html and "administrator" in html
    assert not page.context["administers"]
    assert "/members/" not in html and "/invite/" not in html and "/two-factor/" not in html
    assert "/invitations/" not in html


def test_an_outsider_sees_the_public_facts_and_no_people(admin_a, staff_b, vendor_a):
    page = logged_in(staff_b).get(reverse("organisations:detail", args=[vendor_a.pk]))
    html = page.content.decode()
    assert vendor_a.cvr in html
    assert "Alma" not in html and "staff-a" not in html
    assert not page.context["is_insider"]


# Changing a role --------------------------------------------------------------------------------


def test_an_administrator_makes_a_member_administrator_and_back(admin_a, staff_a, vendor_a):
    client = logged_in(admin_a)
    target = membership(staff_a, vendor_a)
    response = client.post(member_url("member_role", target), {"administrator": "true"})
    assert response.status_code == 302
    assert said(response) == ["Ada is now an administrator of Alfa Software A/S."]
    target.refresh_from_db()
    assert target.is_administrator
    # The new administrator's own page has the buttons at once.
    assert (
        logged_in(staff_a)
        .get(reverse("organisations:detail", args=[vendor_a.pk]))
        .context["administers"]
    )

    response = client.post(member_url("member_role", target), {"administrator": "false"})
    assert said(response) == ["Ada is now a member of Alfa Software A/S."]
    target.refresh_from_db()
    assert not target.is_administrator

    recorded = list(events(Action.MEMBER_ROLE_CHANGED).order_by("pk"))
    assert [e.details["administrator"] for e in recorded] == ["True", "False"]
    assert all(e.actor == admin_a for e in recorded)
    assert all(list(e.concerns.all()) == [vendor_a] for e in recorded)
    assert recorded[0].details["user"] == "staff-a"


def test_a_role_already_held_changes_nothing_and_records_nothing(admin_a, staff_a, vendor_a):
    target = membership(staff_a, vendor_a)
    logged_in(admin_a).post(member_url("member_role", target), {"administrator": "false"})
    assert not events(Action.MEMBER_ROLE_CHANGED).exists()


# The last active administrator ------------------------------------------------------------------

LAST = (
    "Alma Admin is the only active administrator of Alfa Software A/S. Make another member "
    "administrator first: an organisation always keeps at least one."
)


@pytest.mark.parametrize(
    ("name", "data"),
    [("member_role", {"administrator": "false"}), ("member_remove", {}), ("member_deactivate", {})],
    ids=["demote", "remove", "deactivate"],
)
def test_the_last_active_administrator_cannot_demote_remove_or_close_themselves(
    admin_a, staff_a, vendor_a, name, data
):
    own = membership(admin_a, vendor_a)
    response = logged_in(admin_a).post(member_url(name, own), data)
    assert response.status_code == 302
    assert said(response) == [LAST]
    own.refresh_from_db()
    admin_a.refresh_from_db()
    assert own.is_administrator and admin_a.is_active
    assert no_change_recorded()


def test_nor_can_a_superuser_leave_an_organisation_without_an_administrator(
    superuser, admin_a, vendor_a
):
    own = membership(admin_a, vendor_a)
    client = logged_in(superuser)
    for name, data in [("member_role", {"administrator": "false"}), ("member_remove", {})]:
        assert said(client.post(member_url(name, own), data)) == [LAST]
    assert Membership.objects.filter(pk=own.pk, is_administrator=True).exists()


def test_with_a_second_administrator_the_first_may_step_down(admin_a, staff_a, vendor_a):
    second = membership(staff_a, vendor_a)
    client = logged_in(admin_a)
    said(client.post(member_url("member_role", second), {"administrator": "true"}))
    own = membership(admin_a, vendor_a)
    response = client.post(member_url("member_role", own), {"administrator": "false"})
    assert said(response) == ["Alma Admin is now a member of Alfa Software A/S."]
    # Now Ada is the last one, and the rule holds for her.
    response = logged_in(staff_a).post(
        member_url("member_role", second), {"administrator": "false"}
    )
    assert said(response)[0].startswith("Ada is the only active administrator")
    assert Membership.objects.filter(organisation=vendor_a, is_administrator=True).get() == second


def test_an_administrator_whose_login_is_closed_does_not_count(admin_a, vendor_a):
    make_administrator("closed-admin", vendor_a, is_active=False)
    response = logged_in(admin_a).post(
        member_url("member_role", membership(admin_a, vendor_a)), {"administrator": "false"}
    )
    assert said(response) == [LAST]


# Removing a member ------------------------------------------------------------------------------


def test_removing_a_member_keeps_the_user_and_closes_a_login_left_with_no_organisation(
    admin_a, staff_a, vendor_a
):
    target = membership(staff_a, vendor_a)
    # Something the member did, which must outlive their membership.
    earlier = AuditEvent.objects.create(
        actor=staff_a, action=Action.SEND, object_type="x.Y", object_id="1"
    )
    staff_client = logged_in(staff_a)
    assert staff_client.get(reverse("dashboard")).status_code == 200

    client = logged_in(admin_a)
    confirm = client.get(member_url("member_remove", target))
    assert confirm.status_code == 200
    assert "belongs to no other organisation" in confirm.content.decode()
    response = client.post(member_url("member_remove", target))
    assert said(response) == [
        "Ada is removed from Alfa Software A/S. They belong to no other organisation, so their "
        "login is closed; their records stay."
    ]

    assert not Membership.objects.filter(pk=target.pk).exists()
    staff_a.refresh_from_db()
    assert not staff_a.is_active
    earlier.refresh_from_db()
    assert earlier.actor == staff_a
    removed = events(Action.MEMBER_REMOVED).get()
    assert removed.actor == admin_a and list(removed.concerns.all()) == [vendor_a]
    assert removed.details["user"] == "staff-a"
    closed = events(Action.MEMBER_DEACTIVATED).get()
    assert closed.details["no_organisation_left"] == "True"
    assert list(closed.concerns.all()) == [vendor_a]
    # The leaver's open session no longer lets them in.
    after = staff_client.get(reverse("dashboard"))
    assert after.status_code == 302 and after["Location"].startswith(reverse("login"))


def test_a_member_of_another_organisation_too_keeps_their_login(
    admin_a, staff_a, vendor_a, vendor_b, system_a
):
    Membership.objects.create(user=staff_a, organisation=vendor_b)
    staff_client = logged_in(staff_a)
    detail = reverse("itsystems:detail", args=[system_a.pk])
    assert staff_client.get(detail).status_code == 200

    response = logged_in(admin_a).post(member_url("member_remove", membership(staff_a, vendor_a)))
    assert said(response) == ["Ada is removed from Alfa Software A/S; their records stay."]
    staff_a.refresh_from_db()
    assert staff_a.is_active
    assert not events(Action.MEMBER_DEACTIVATED).exists()
    # Out of vendor A at once: its records are no longer theirs to see.
    assert staff_client.get(detail).status_code == 404
    assert staff_client.get(reverse("dashboard")).status_code == 200


def test_removing_a_portal_superuser_from_an_organisation_leaves_their_login_open(
    admin_a, superuser, vendor_a
):
    Membership.objects.create(user=superuser, organisation=vendor_a)
    logged_in(admin_a).post(member_url("member_remove", membership(superuser, vendor_a)))
    superuser.refresh_from_db()
    assert superuser.is_active
    assert not Membership.objects.filter(user=superuser).exists()


def test_an_administrator_may_remove_themselves_when_another_remains(admin_a, staff_a, vendor_a):
    Membership.objects.filter(user=staff_a).update(is_administrator=True)
    response = logged_in(admin_a).post(member_url("member_remove", membership(admin_a, vendor_a)))
    assert response.status_code == 302
    assert not Membership.objects.filter(user=admin_a).exists()
    admin_a.refresh_from_db()
    assert not admin_a.is_active


# Closing a login --------------------------------------------------------------------------------


def test_closing_a_members_login_keeps_the_membership(admin_a, staff_a, vendor_a, vendor_b):
    Membership.objects.create(user=staff_a, organisation=vendor_b)
    staff_client = logged_in(staff_a)
    target = membership(staff_a, vendor_a)
    client = logged_in(admin_a)
    assert client.get(member_url("member_deactivate", target)).status_code == 200
    response = client.post(member_url("member_deactivate", target))
    assert said(response) == ["Ada can no longer log in."]
    staff_a.refresh_from_db()
    assert not staff_a.is_active
    assert Membership.objects.filter(pk=target.pk).exists()
    event = events(Action.MEMBER_DEACTIVATED).get()
    assert event.actor == admin_a
    # One login for every organisation of theirs: each is told.
    assert set(event.concerns.all()) == {vendor_a, vendor_b}
    assert staff_client.get(reverse("dashboard")).status_code == 302
    # Closing it again changes nothing.
    client.post(member_url("member_deactivate", target))
    assert events(Action.MEMBER_DEACTIVATED).count() == 1


def test_the_only_administrator_of_another_organisation_keeps_their_login(
    admin_a, admin_b, vendor_a, vendor_b
):
    Membership.objects.create(user=admin_b, organisation=vendor_a)
    response = logged_in(admin_a).post(
        member_url("member_deactivate", membership(admin_b, vendor_a))
    )
    # Which organisation is not said: its people are its own.
    assert said(response) == [
        "Bent is the only active administrator of another organisation, so their login stays "
        "open. Remove them from Alfa Software A/S instead."
    ]
    admin_b.refresh_from_db()
    assert admin_b.is_active


def test_an_administrator_cannot_close_a_superusers_login(admin_a, superuser, vendor_a):
    Membership.objects.create(user=superuser, organisation=vendor_a)
    target = membership(superuser, vendor_a)
    client = logged_in(admin_a)
    confirm = client.get(member_url("member_deactivate", target)).content.decode()
    assert "only the portal's superusers close that login" in confirm
    response = client.post(member_url("member_deactivate", target))
    assert said(response) == [
        "root administers the portal; only the portal's superusers close that login."
    ]
    superuser.refresh_from_db()
    assert superuser.is_active


# The two-step login requirement -----------------------------------------------------------------


def test_an_administrator_switches_the_two_step_requirement_on_and_off(admin_a, staff_a, vendor_a):
    client = logged_in(admin_a)
    url = reverse("organisations:two_factor", args=[vendor_a.pk])
    response = client.post(url, {"required": "true"})
    assert said(response) == [
        "Every member of Alfa Software A/S now confirms each login with a code."
    ]
    vendor_a.refresh_from_db()
    assert vendor_a.requires_two_factor
    # Members read it on the page.
    page = logged_in(staff_a).get(reverse("organisations:detail", args=[vendor_a.pk]))
    assert "Required: every member confirms each login" in page.content.decode()

    client.post(url, {"required": "true"})  # already on: nothing to record
    client.post(url, {"required": "false"})
    vendor_a.refresh_from_db()
    assert not vendor_a.requires_two_factor
    recorded = list(events(Action.TWO_FACTOR_POLICY).order_by("pk"))
    assert [e.details["required"] for e in recorded] == ["True", "False"]
    assert all(list(e.concerns.all()) == [vendor_a] and e.actor == admin_a for e in recorded)


# Who may not ------------------------------------------------------------------------------------


def member_urls(vendor, target: Membership, invitation: Invitation) -> list[tuple[str, dict]]:
    return [
        (member_url("member_role", target), {"administrator": "true"}),
        (member_url("member_remove", target), {}),
        (member_url("member_deactivate", target), {}),
        (member_url("member_two_factor_reset", target), {}),
        (reverse("organisations:invite", args=[vendor.pk]), {"email": "new@alfa.example"}),
        (
            reverse("organisations:invitation_resend", args=[vendor.pk, invitation.pk]),
            {},
        ),
        (
            reverse("organisations:invitation_withdraw", args=[vendor.pk, invitation.pk]),
            {},
        ),
        (reverse("organisations:two_factor", args=[vendor.pk]), {"required": "true"}),
    ]


@pytest.fixture
def waiting_invitation(vendor_a, admin_a):
    from datetime import timedelta

    from django.utils import timezone

    return Invitation.objects.create(
        organisation=vendor_a,
        email="waiting@alfa.example",
        token_sha256="0" * 64,
        invited_by=admin_a,
        expires_at=timezone.now() + timedelta(days=3),
    )


def nothing_changed(vendor_a, staff_a, waiting_invitation):
    target = membership(staff_a, vendor_a)
    staff_a.refresh_from_db()
    vendor_a.refresh_from_db()
    waiting_invitation.refresh_from_db()
    assert not target.is_administrator and staff_a.is_active
    assert not vendor_a.requires_two_factor
    assert waiting_invitation.cancelled_at is None and waiting_invitation.token_sha256 == "0" * 64
    assert Invitation.objects.count() == 1
    assert no_change_recorded()


def test_a_member_who_is_no_administrator_is_refused_403(
    admin_a, staff_a, vendor_a, waiting_invitation
):
    colleague = make_user("colleague-a", vendor_a)
    client = logged_in(colleague)
    for url, data in member_urls(vendor_a, membership(staff_a, vendor_a), waiting_invitation):
        assert client.post(url, data).status_code == 403, url
    nothing_changed(vendor_a, staff_a, waiting_invitation)


@pytest.mark.parametrize("who", ["admin_b", "operator", "architect"])
def test_anyone_outside_the_organisation_finds_nothing_404(
    request, admin_a, staff_a, vendor_a, waiting_invitation, who
):
    """Another organisation's administrator, KOMBIT's operators and a municipality's architect
    have no say over a vendor's people: to them its members and invitations do not exist."""
    outsider = request.getfixturevalue(who)
    if who != "admin_b":
        Membership.objects.filter(user=outsider).update(is_administrator=True)
    client = logged_in(outsider)
    for url, data in member_urls(vendor_a, membership(staff_a, vendor_a), waiting_invitation):
        assert client.get(url).status_code in (404, 405), url
        assert client.post(url, data).status_code == 404, url
    nothing_changed(vendor_a, staff_a, waiting_invitation)


def test_another_organisations_member_cannot_be_reached_through_ones_own(
    admin_a, staff_b, vendor_a, vendor_b
):
    """The organisation in the address must be the member's: administering vendor A gives no
    way into vendor B's memberships."""
    theirs = membership(staff_b, vendor_b)
    url = reverse("organisations:member_remove", args=[vendor_a.pk, theirs.pk])
    assert logged_in(admin_a).post(url).status_code == 404
    assert Membership.objects.filter(pk=theirs.pk).exists()


def test_a_superuser_runs_any_organisations_people(superuser, staff_a, vendor_a):
    client = logged_in(superuser)
    target = membership(staff_a, vendor_a)
    client.post(member_url("member_role", target), {"administrator": "true"})
    assert Membership.objects.get(pk=target.pk).is_administrator
    page = client.get(reverse("organisations:detail", args=[vendor_a.pk]))
    assert page.context["administers"]


def test_the_access_rules_answer_the_same(admin_a, staff_a, admin_b, operator, vendor_a):
    members_of_a = Membership.objects.filter(organisation=vendor_a)
    assert access.changeable(admin_a, members_of_a).count() == 2
    assert not access.changeable(staff_a, members_of_a).exists()
    assert not access.changeable(admin_b, members_of_a).exists()
    assert not access.changeable(operator, members_of_a).exists()
    assert access.administers(admin_a, vendor_a)
    assert not access.administers(staff_a, vendor_a)


# The admin --------------------------------------------------------------------------------------


def test_a_superuser_makes_the_first_administrator_in_the_admin(superuser, staff_a, vendor_a):
    client = logged_in(superuser)
    target = membership(staff_a, vendor_a)
    url = reverse("admin:accounts_membership_change", args=[target.pk])
    assert 'name="is_administrator"' in client.get(url).content.decode()
    response = client.post(
        url, {"user": staff_a.pk, "organisation": vendor_a.pk, "is_administrator": "on"}
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.is_administrator


def test_in_the_admin_too_the_last_administrator_keeps_the_role(superuser, admin_a, vendor_a):
    client = logged_in(superuser)
    last = membership(admin_a, vendor_a)
    url = reverse("admin:accounts_membership_change", args=[last.pk])

    response = client.post(url, {})  # the role's box left empty

    assert response.status_code == 200
    assert "the only active administrator" in response.content.decode()
    assert Membership.objects.get(pk=last.pk).is_administrator
    # Nor is it deleted, alone or in a bulk action.
    delete = reverse("admin:accounts_membership_delete", args=[last.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    changelist = client.get(reverse("admin:accounts_membership_changelist")).content.decode()
    assert "delete_selected" not in changelist
    assert Membership.objects.filter(pk=last.pk).exists()


def test_a_change_in_the_admin_goes_by_the_rules_into_the_audit_log(
    superuser, admin_a, staff_a, vendor_a
):
    client = logged_in(superuser)
    target = membership(staff_a, vendor_a)
    change = reverse("admin:accounts_membership_change", args=[target.pk])
    client.post(change, {"is_administrator": "on"})
    client.post(change, {})  # and back: admin_a is an administrator still
    delete = reverse("admin:accounts_membership_delete", args=[target.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302

    assert not Membership.objects.filter(pk=target.pk).exists()
    actions = AuditEvent.objects.filter(actor=superuser, action__in=PEOPLE).order_by("pk")
    assert list(actions.values_list("action", flat=True)) == [
        Action.MEMBER_ROLE_CHANGED,
        Action.MEMBER_ROLE_CHANGED,
        Action.MEMBER_REMOVED,
        Action.MEMBER_DEACTIVATED,
    ]
    # The organisation's page in the admin shows its people and changes none.
    page = client.get(reverse("admin:accounts_organisation_change", args=[vendor_a.pk]))
    assert "memberships-TOTAL_FORMS" in page.content.decode()
    assert 'name="memberships-0-is_administrator"' not in page.content.decode()


# A lost phone -----------------------------------------------------------------------------------


def test_an_administrator_resets_a_members_two_step_login_for_a_lost_phone(
    admin_a, staff_a, vendor_a
):
    device = confirmed_device(staff_a)
    StaticDevice.objects.create(user=staff_a, name="Backup codes")
    client = logged_in(admin_a)
    page = client.get(reverse("organisations:detail", args=[vendor_a.pk])).content.decode()
    reset = member_url("member_two_factor_reset", membership(staff_a, vendor_a))
    assert reset in page
    assert "Two-step login" in page

    confirm = client.get(reset)
    assert confirm.status_code == 200
    assert "authenticator app and backup codes stop working" in confirm.content.decode()
    assert TOTPDevice.objects.filter(pk=device.pk).exists()  # not on the way to the question

    response = client.post(reset)

    assert response.status_code == 302
    assert said(client.get(response["Location"])) == [
        "The two-step login of Ada is reset: their app and backup codes no longer work."
    ]
    assert not TOTPDevice.objects.filter(user=staff_a).exists()
    assert not StaticDevice.objects.filter(user=staff_a).exists()
    event = AuditEvent.objects.get(action=Action.TWO_FACTOR_REMOVED)
    assert (event.actor, event.object_id) == (admin_a, str(staff_a.pk))
    assert list(event.concerns.all()) == [vendor_a]
    # Again: nothing left to reset, and nothing recorded.
    client.post(reset)
    assert AuditEvent.objects.filter(action=Action.TWO_FACTOR_REMOVED).count() == 1


def test_no_reset_of_ones_own_two_step_login_or_a_portal_administrators_here(
    admin_a, staff_a, vendor_a, superuser
):
    confirmed_device(admin_a)
    client = logged_in(admin_a)
    page = client.get(reverse("organisations:detail", args=[vendor_a.pk])).content.decode()
    assert member_url("member_two_factor_reset", membership(admin_a, vendor_a)) not in page
    with pytest.raises(members.Refused, match="account's page"):
        members.reset_two_factor(admin_a, membership(admin_a, vendor_a))
    staff_a.is_staff = True
    staff_a.save()
    confirmed_device(staff_a)
    with pytest.raises(members.Refused, match="superusers"):
        members.reset_two_factor(admin_a, membership(staff_a, vendor_a))
    assert members.reset_two_factor(superuser, membership(staff_a, vendor_a))
    assert TOTPDevice.objects.filter(user=admin_a).exists()
