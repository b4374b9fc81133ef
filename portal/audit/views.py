from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.access import visible
from portal.audit.models import AuditEvent
from portal.audit.sentences import entries


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    events = visible(request.user, AuditEvent.objects.select_related("actor"))
    action = request.GET.get("action", "")
    if action in AuditEvent.Action.values:
        events = events.filter(action=action)
    else:
        action = ""
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "audit/log.html",
        {
            "page": page,
            "entries": entries(page.object_list),
            "action": action,
            "actions": AuditEvent.Action.choices,
        },
    )
