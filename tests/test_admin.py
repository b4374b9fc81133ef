import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

PROJECT_APPS = [
    "accounts",
    "itsystems",
    "outbox",
    "onboarding",
    "specs",
    "transfers",
    "gdpr",
    "core",
]
PROJECT_MODELS = [
    model for label in PROJECT_APPS for model in apps.get_app_config(label).get_models()
]


@pytest.mark.parametrize("model", PROJECT_MODELS, ids=lambda model: model._meta.label)
def test_every_model_is_in_the_admin_for_superusers(client_for, superuser, model, aarhus):
    assert model in admin.site._registry
    client = client_for(superuser)
    meta = model._meta
    response = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert response.status_code == 200
    # Records the portal writes itself (download logs) have no add page on purpose.
    may_add = admin.site._registry[model].has_add_permission(response.wsgi_request)
    response = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
    assert response.status_code == (200 if may_add else 403)


def test_the_admin_is_closed_to_ordinary_users(client_for, staff_a):
    response = client_for(staff_a).get(reverse("admin:index"))
    assert response.status_code == 302
