"""Each person's own account (`/account/`): the overview, the password, a forgotten password."""

from django.urls import path

from portal.accounts import self_service

app_name = "account"
urlpatterns = [
    path("", self_service.overview, name="overview"),
    path("password/", self_service.PasswordChange.as_view(), name="password_change"),
    # A forgotten password: open to anyone, logged in or not.
    path("password-reset/", self_service.PasswordReset.as_view(), name="password_reset"),
    path("password-reset/sent/", self_service.password_reset_sent, name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        self_service.PasswordResetConfirm.as_view(),
        name="password_reset_confirm",
    ),
]
