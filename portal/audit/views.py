from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.access import visible
from portal.audit import logins
from portal.audit.models import AuditEvent
from portal.audit.sentences import entries


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    events = visible(request.user, AuditEvent.objects.select_related("actor"))
    # A person's logins and password events: for their organisation's administrators alone.
    events = logins.restrict(request.user, events)
    actions = AuditEvent.Action.choices
    if not logins.sees_personal_events(request.user):
        actions = [(value, label) for value, label in actions if value not in logins.PERSONAL]
    action = request.GET.get("action", "")
    if action in {value for value, _label in actions}:
        events = events.filter(action=action)
    else:
        action = ""
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "audit/log.html",
        {
            "page": page,
            "entries": [logins.reworded(entry) for entry in entries(page.object_list)],
            "action": action,
            "actions": actions,
        },
    )
