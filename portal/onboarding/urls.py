from django.urls import path

from portal.onboarding import bilateral_views, views

app_name = "onboarding"
urlpatterns = [
    path("", views.integration_list, name="list"),
    path("new/", views.integration_create, name="create"),
    path("matrix/", views.vendor_matrix, name="matrix"),
    path("municipality/", views.municipality_overview, name="municipality"),
    path("<int:pk>/", views.integration_detail, name="detail"),
    path("<int:pk>/edit/", views.integration_edit, name="edit"),
    path("<int:pk>/municipalities/", views.integration_add_municipality, name="add_municipality"),
    path(
        "<int:pk>/municipalities/<int:municipality_pk>/remove/",
        views.integration_remove_municipality,
        name="remove_municipality",
    ),
    path("<int:pk>/agreement/", bilateral_views.agreement_edit, name="agreement"),
    path(
        "agreements/<int:pk>/document/",
        bilateral_views.agreement_document,
        name="agreement_document",
    ),
    path("<int:pk>/test/", bilateral_views.test_edit, name="test"),
    path("<int:pk>/consents/give/", bilateral_views.consent_give, name="consent_give"),
    path("<int:pk>/consents/withdraw/", bilateral_views.consent_withdraw, name="consent_withdraw"),
    path("tasks/<int:pk>/", views.task_edit, name="task"),
]
