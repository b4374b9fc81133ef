import uuid

from django.urls import reverse

from portal.itsystems.models import ItSystem


def _form(vendor, **overrides):
    data = {"name": "Alfa Sag", "uuid": str(uuid.uuid4()), "vendor": vendor.pk, "is_sender": "on"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_vendor_staff_register_an_it_system(client_for, staff_a, vendor_a):
    data = _form(vendor_a, is_receiver="on")
    response = client_for(staff_a).post(reverse("itsystems:create"), data)
    it_system = ItSystem.objects.get(name="Alfa Sag")
    assert response["Location"] == reverse("itsystems:detail", args=[it_system.pk])
    assert str(it_system.uuid) == data["uuid"]
    assert it_system.vendor == vendor_a
    assert it_system.is_sender and it_system.is_receiver


def test_an_it_system_must_send_or_receive(client_for, staff_a, vendor_a):
    response = client_for(staff_a).post(
        reverse("itsystems:create"), _form(vendor_a, is_sender=None)
    )
    assert "afsender, modtager eller begge" in response.content.decode()
    assert not ItSystem.objects.exists()


def test_a_malformed_uuid_is_refused(client_for, staff_a, vendor_a):
    response = client_for(staff_a).post(
        reverse("itsystems:create"), _form(vendor_a, uuid="not-a-uuid")
    )
    assert response.context["form"].errors["uuid"]
    assert not ItSystem.objects.exists()


def test_a_uuid_registered_twice_is_refused(client_for, staff_a, vendor_a, system_b):
    response = client_for(staff_a).post(
        reverse("itsystems:create"), _form(vendor_a, uuid=str(system_b.uuid))
    )
    assert response.context["form"].errors["uuid"]
    assert ItSystem.objects.count() == 1


def test_the_same_name_twice_for_one_vendor_is_refused(client_for, staff_a, vendor_a, system_a):
    response = client_for(staff_a).post(
        reverse("itsystems:create"), _form(vendor_a, name=system_a.name)
    )
    assert response.context["form"].non_field_errors()
    assert ItSystem.objects.count() == 1


def test_vendor_staff_edit_their_it_system(client_for, staff_a, vendor_a, system_a):
    data = _form(vendor_a, name="Alfa Omsorg 2", uuid=str(system_a.uuid))
    response = client_for(staff_a).post(reverse("itsystems:edit", args=[system_a.pk]), data)
    assert response.status_code == 302
    system_a.refresh_from_db()
    assert system_a.name == "Alfa Omsorg 2"


def test_the_model_refuses_an_it_system_owned_by_a_municipality(aarhus):
    import pytest
    from django.core.exceptions import ValidationError

    it_system = ItSystem(uuid=uuid.uuid4(), name="X", vendor=aarhus, is_sender=True)
    with pytest.raises(ValidationError) as error:
        it_system.full_clean()
    assert "vendor" in error.value.message_dict


def test_the_database_refuses_an_it_system_that_neither_sends_nor_receives(vendor_a):
    import pytest
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ItSystem.objects.create(uuid=uuid.uuid4(), name="Idle", vendor=vendor_a)
