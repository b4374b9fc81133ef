"""InfRef names follow FagsystemdefineredeDataRefGDPR<number>_<version> exactly, everywhere."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from gdpr.forms import AssignInfRefForm
from gdpr.infref import infref_name, parse_infref
from gdpr.models import InfRef

GOOD = [
    ("FagsystemdefineredeDataRefGDPR1203_1", (1203, 1)),
    ("FagsystemdefineredeDataRefGDPR1_1", (1, 1)),
    ("FagsystemdefineredeDataRefGDPR10_20", (10, 20)),
    ("FagsystemdefineredeDataRefGDPR999999999_999999999", (999999999, 999999999)),
]
BAD = [
    ("FagsystemdefineredeDataRefGDPR01203_1", "infref_number"),
    ("FagsystemdefineredeDataRefGDPR0_1", "infref_number"),
    ("FagsystemdefineredeDataRefGDPR1203_0", "infref_version"),
    ("FagsystemdefineredeDataRefGDPR1203_01", "infref_version"),
    ("FagsystemdefineredeDataRefGDPR1203", "infref_shape"),
    ("FagsystemdefineredeDataRefGDPR_1", "infref_shape"),
    ("FagsystemdefineredeDataRefGDPR1203_1 ", "infref_shape"),
    ("FagsystemdefineredeDataRefGDPR1203_1\n", "infref_shape"),
    ("FagsystemdefineredeDataRefGDPR12-3_1", "infref_shape"),
    ("FagsystemdefineredeDataRefGDPR١٢٠٣_1", "infref_shape"),  # Arabic-Indic digits
    ("FagsystemdefineredeDataRefGDPR1203_1_2", "infref_shape"),
    ("FagsystemdefineredeDataRefGDPR1234567890_1", "infref_length"),
    ("fagsystemdefineredeDataRefGDPR1203_1", "infref_prefix"),
    ("FagsystemDefineredeDataRefGDPR1203_1", "infref_prefix"),
    ("InfRef1203_1", "infref_prefix"),
    ("", "infref_prefix"),
]


@pytest.mark.parametrize(("name", "parsed"), GOOD)
def test_well_formed_names_parse(name, parsed):
    assert parse_infref(name) == parsed
    assert infref_name(*parsed) == name


@pytest.mark.parametrize(("name", "code"), BAD)
def test_malformed_names_are_refused_with_the_reason(name, code):
    with pytest.raises(ValidationError) as error:
        parse_infref(name)
    assert error.value.code == code


def test_the_message_is_danish_and_shows_an_example(db):
    form = AssignInfRefForm({"name": "FagsystemdefineredeDataRefGDPR01203_1"})
    assert not form.is_valid()
    assert form.errors["name"] == [
        "InfRef-nummeret skrives uden foranstillede nuller og er aldrig 0."
    ]
    form = AssignInfRefForm({"name": "InfRef1203_1"})
    assert "FagsystemdefineredeDataRefGDPR1203_1" in form.errors["name"][0]


@pytest.mark.parametrize(("name", "code"), BAD[:4])
def test_the_model_refuses_them_in_validation_and_on_save(system_a, operator, name, code):
    infref = InfRef(name=name, it_system=system_a, assigned_by=operator)
    with pytest.raises(ValidationError) as error:
        infref.full_clean()
    assert "name" in error.value.message_dict
    with pytest.raises(ValidationError):
        infref.save()
    assert not InfRef.objects.exists()


def test_a_number_is_used_once_whatever_the_version(system_a, operator):
    InfRef.objects.create(
        name="FagsystemdefineredeDataRefGDPR5_1", it_system=system_a, assigned_by=operator
    )
    twin = InfRef(
        name="FagsystemdefineredeDataRefGDPR5_2", it_system=system_a, assigned_by=operator
    )
    with pytest.raises(ValidationError) as error:
        twin.full_clean()
    assert error.value.message_dict["number"] == ["Dette InfRef-nummer er allerede i brug."]
    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()


def test_an_infref_belongs_to_a_sending_it_system(system_b, operator):
    infref = InfRef(
        name="FagsystemdefineredeDataRefGDPR7_1", it_system=system_b, assigned_by=operator
    )
    with pytest.raises(ValidationError) as error:
        infref.full_clean()
    assert "it_system" in error.value.message_dict


def test_the_admin_refuses_a_malformed_name(client_for, superuser, system_a):
    response = client_for(superuser).post(
        reverse("admin:gdpr_infref_add"),
        {
            "name": "FagsystemdefineredeDataRefGDPR007_1",
            "it_system": system_a.pk,
            "assigned_by": superuser.pk,
        },
    )
    assert response.status_code == 200
    assert "uden foranstillede nuller" in response.content.decode()
    assert not InfRef.objects.exists()
