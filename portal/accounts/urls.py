from django.urls import path

from portal.accounts import views

app_name = "organisations"
urlpatterns = [
    path("", views.organisation_list, name="list"),
    path("<int:pk>/", views.organisation_detail, name="detail"),
    # The organisation's people, run by its administrators.
    path("<int:pk>/invite/", views.invite, name="invite"),
    path(
        "<int:pk>/members/<int:membership_pk>/role/",
        views.member_role,
        name="member_role",
    ),
    path(
        "<int:pk>/members/<int:membership_pk>/remove/",
        views.member_remove,
        name="member_remove",
    ),
    path(
        "<int:pk>/members/<int:membership_pk>/deactivate/",
        views.member_deactivate,
        name="member_deactivate",
    ),
    path(
        "<int:pk>/members/<int:membership_pk>/two-factor-reset/",
        views.member_two_factor_reset,
        name="member_two_factor_reset",
    ),
    path(
        "<int:pk>/invitations/<int:invitation_pk>/resend/",
        views.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "<int:pk>/invitations/<int:invitation_pk>/withdraw/",
        views.invitation_withdraw,
        name="invitation_withdraw",
    ),
    path("<int:pk>/two-factor/", views.two_factor_requirement, name="two_factor"),
]
