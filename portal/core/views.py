from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.accounts.access import memberships_of, scope_of, visible
from portal.accounts.models import Membership, Organisation
from portal.alerts.models import Alert
from portal.core import charts
from portal.core.health import check_health, database_health
from portal.itsystems.models import ItSystem
from portal.onboarding.todo import todo_for

# A vendor with hundreds of integrations would get a page of steps; the first ones are listed.
TODO_SHOWN = 25
IT_SYSTEMS_SHOWN = 20


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    scope = scope_of(user)
    it_systems = visible(user, ItSystem.objects.select_related("vendor"))
    # Only the names shown: a superuser's colleagues are every member of every organisation.
    colleagues = (
        visible(user, Membership.objects.select_related("user", "organisation"))
        .exclude(user=user)
        .only("user__first_name", "user__last_name", "user__username", "organisation__name")
        .order_by("organisation__name", "user__first_name", "user__username")
    )
    # What `str(alert.route)` shows comes along: ten alerts, not twenty more queries.
    alerts = (
        visible(user, Alert.objects.filter(resolved_at__isnull=True))
        .select_related("route__municipality", "route__infref", "route__receiver")
        .order_by("-raised_at", "-id")
    )
    # The user's own organisations came with their memberships, in the order of their names
    # (Membership's ordering): not asked for again.
    own = [membership.organisation for membership in memberships_of(user)]
    # One more than is shown: the IT systems are counted only when there are more.
    systems_shown = list(it_systems[: IT_SYSTEMS_SHOWN + 1])
    context = {
        "alerts": alerts[:10],
        "alert_count": alerts.count(),
        "scope": scope,
        "vendors": [organisation for organisation in own if organisation.pk in scope.vendor_ids],
        "municipalities": [
            organisation for organisation in own if organisation.pk in scope.municipality_ids
        ],
        "it_systems": systems_shown[:IT_SYSTEMS_SHOWN],
        "it_system_count": len(systems_shown)
        if len(systems_shown) <= IT_SYSTEMS_SHOWN
        else it_systems.count(),
        "colleagues": colleagues,
        "show_register_overview": scope.is_kombit or scope.is_superuser,
    }
    # The steps that wait for the user's organisations; a user who acts for none has none.
    if scope.organisation_ids:
        todo = todo_for(user)
        context["todo"] = {"items": todo[:TODO_SHOWN], "count": len(todo)}
    # KOMBIT sees no transfers (they carry municipal data), so its operators get no day charts.
    if scope.vendor_ids or scope.municipality_ids or scope.is_superuser:
        day_charts = charts.day_charts(user)
        context["charts"] = day_charts
        context["descriptions"] = charts.describe_day_charts(day_charts)
    if scope.organisation_ids or scope.is_superuser:
        context["onboarding"] = charts.onboarding_chart(user)
    if context["show_register_overview"]:
        context["counts"] = {
            "vendors": Organisation.objects.filter(kind=Organisation.Kind.VENDOR).count(),
            "municipalities": Organisation.objects.filter(
                kind=Organisation.Kind.MUNICIPALITY
            ).count(),
            "it_systems": context["it_system_count"],
        }
    return render(request, "core/dashboard.html", context)


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """The portal's icon, for what asks for /favicon.ico without reading a page's link to it."""
    return redirect(static("portal/favicon.svg"), permanent=True)


@require_GET
@never_cache
def livez(request: HttpRequest) -> JsonResponse:
    """The process answers: for a load balancer or supervisor deciding whether to restart it.

    Nothing else is asked, the database least of all: a web node whose database is away is not
    helped by a restart.
    """
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """The database answers: whether a load balancer should send this web node requests.

    The workers and the simulator are not asked (`/healthz` does): a web node serves its pages
    while the workers are down, and taking it out of rotation would not bring them back.
    """
    database = database_health()
    ready = database["ok"]
    body = {"status": "ok" if ready else "not ok"}
    if ready and _may_read_health(request.user):
        body["checks"] = {"database": database}
    return JsonResponse(body, status=200 if ready else 503)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The database, the task queue with its workers, and the simulator where it is used: for
    monitoring. 200 or 503; what each part reports, for staff only.

    The parts' reports name the database vendor, hosts and ports and their errors: nothing an
    anonymous caller needs to know about the portal's insides.
    """
    healthy, report = check_health()
    status = 200 if healthy else 503
    # Who asks is known only from the database: while it is down, no one gets the details
    # (reading the session would turn the 503 into a 500).
    if report["checks"]["database"]["ok"] and _may_read_health(request.user):
        return JsonResponse(report, status=status)
    return JsonResponse({"status": report["status"]}, status=status)


def _may_read_health(user) -> bool:
    """Staff past two-step login: the admin's users."""
    return user.is_staff and (not settings.TWO_FACTOR_REQUIRED or user.is_verified())
