from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from handoff.api import api
from portal.accounts import two_factor, two_factor_manage
from portal.accounts.forms import LoginForm
from portal.core import views as core_views

urlpatterns = [
    path("", core_views.dashboard, name="dashboard"),
    path("healthz", core_views.healthz, name="healthz"),
    path("favicon.ico", core_views.favicon, name="favicon"),
    path("livez", core_views.livez, name="livez"),
    path("readyz", core_views.readyz, name="readyz"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=LoginForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/two-factor/", two_factor.verify, name="two_factor_verify"),
    path("login/two-factor/setup/", two_factor.setup, name="two_factor_setup"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("organisations/", include("portal.accounts.urls")),
    # Each person's own account: password, two-step login.
    path("account/two-factor/", two_factor_manage.manage, name="two_factor_manage"),
    path(
        "account/two-factor/backup-codes/",
        two_factor_manage.new_backup_codes,
        name="two_factor_backup_codes",
    ),
    path("account/two-factor/remove/", two_factor_manage.remove, name="two_factor_remove"),
    path("account/", include("portal.accounts.self_urls")),
    path("invitations/", include("portal.accounts.invitation_urls")),
    path("sso/", include("portal.sso.urls")),
    path("it-systems/", include("portal.itsystems.urls")),
    path("it-systems/", include("handoff.urls")),
    path("outbox/", include("portal.outbox.urls")),
    path("infrefs/", include("gdpr.urls")),
    path("specifications/", include("portal.specs.urls")),
    path("integrations/", include("portal.onboarding.urls")),
    path("transfers/", include("transfers.urls")),
    path("review/", include("portal.review.urls")),
    path("audit/", include("portal.audit.urls")),
    path("alerts/", include("portal.alerts.urls")),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]
