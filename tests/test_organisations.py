import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from portal.accounts.cvr import is_valid_cvr, validate_cvr
from portal.accounts.models import Membership, Organisation, Role
from portal.accounts.municipalities import read_municipalities


@pytest.mark.parametrize("cvr", ["64942212", "19435075", "55133018", "29189129"])
def test_valid_cvr_numbers_pass(cvr):
    assert is_valid_cvr(cvr)
    validate_cvr(cvr)


@pytest.mark.parametrize(
    ("cvr", "code"),
    [
        ("64942213", "cvr_checksum"),  # last digit off by one
        ("1943507", "cvr_format"),  # seven digits
        ("194350755", "cvr_format"),  # nine digits
        ("1943 075", "cvr_format"),
        ("1943507A", "cvr_format"),
        ("١٩٤٣٥٠٧٥", "cvr_format"),  # Arabic-Indic digits are digits to Python, not to CVR
        ("00000000", "cvr_checksum"),  # sums to 0 but no CVR number starts with 0
    ],
)
def test_invalid_cvr_numbers_are_refused_with_a_reason(cvr, code):
    assert not is_valid_cvr(cvr)
    with pytest.raises(ValidationError) as error:
        validate_cvr(cvr)
    assert error.value.code == code


def test_the_shipped_file_holds_the_98_municipalities():
    municipalities = read_municipalities()
    assert len(municipalities) == 98
    assert len({m.code for m in municipalities}) == 98
    assert len({m.cvr for m in municipalities}) == 98
    assert all(len(m.code) == 3 and m.code.isdigit() for m in municipalities)
    assert all(is_valid_cvr(m.cvr) for m in municipalities)
    assert "411" not in {m.code for m in municipalities}  # Christiansø is no municipality


def test_the_migration_loads_every_municipality_and_kombit(db):
    municipalities = Organisation.objects.filter(kind="municipality")
    assert municipalities.count() == 98
    copenhagen = municipalities.get(municipality_code="101")
    assert (copenhagen.name, copenhagen.cvr) == ("Københavns Kommune", "64942212")
    assert {(m.municipality_code, m.name, m.cvr) for m in municipalities} == {
        tuple(m) for m in read_municipalities()
    }
    kombit = Organisation.objects.get(kind="kombit")
    assert kombit.cvr == "19435075"


def test_a_vendor_with_an_invalid_cvr_is_refused_in_danish(db):
    vendor = Organisation(kind="vendor", name="Fejl A/S", cvr="12345678")
    with pytest.raises(ValidationError) as error:
        vendor.full_clean()
    assert "ikke et gyldigt CVR-nummer" in " ".join(error.value.message_dict["cvr"])


def test_a_municipality_needs_its_code_and_only_municipalities_have_one(db):
    with pytest.raises(ValidationError) as error:
        Organisation(kind="municipality", name="Ny Kommune", cvr="39123452").full_clean()
    assert "municipality_code" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        Organisation(kind="vendor", name="V", cvr="39123452", municipality_code="999").full_clean()
    assert "municipality_code" in error.value.message_dict


def test_the_database_itself_enforces_the_organisation_rules(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        Organisation.objects.create(kind="municipality", name="Uden kode", cvr="39123452")
    with pytest.raises(IntegrityError), transaction.atomic():
        Organisation.objects.create(kind="kombit", name="KOMBIT 2", cvr="39123452")
    with pytest.raises(IntegrityError), transaction.atomic():
        Organisation.objects.create(kind="vendor", name="Twin", cvr="64942212")


def test_roles_follow_the_kind_of_organisation(staff_a, architect, operator):
    roles = {
        m.user.username: m.role for m in Membership.objects.select_related("user", "organisation")
    }
    assert roles == {
        "staff-a": Role.VENDOR_STAFF,
        "architect-aarhus": Role.MUNICIPAL_ARCHITECT,
        "operator": Role.KOMBIT_OPERATOR,
    }


def test_the_organisation_list_filters_by_kind_and_searches(client_for, staff_a, vendor_b):
    client = client_for(staff_a)
    page = client.get(reverse("organisations:list"), {"kind": "municipality", "q": "751"})
    names = [o.name for o in page.context["page"].object_list]
    assert names == ["Aarhus Kommune"]
    page = client.get(reverse("organisations:list"), {"q": vendor_b.cvr})
    assert [o.name for o in page.context["page"].object_list] == [vendor_b.name]


def test_an_unknown_kind_filter_is_ignored(client_for, staff_a):
    page = client_for(staff_a).get(reverse("organisations:list"), {"kind": "<script>"})
    assert page.status_code == 200
    assert page.context["kind"] == ""
