from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.accounts.access import get_changeable_or_404
from portal.alerts.models import Alert


@login_required
@require_POST
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_changeable_or_404(request.user, Alert.objects.all(), pk=pk)
    if alert.resolved_at is None:
        Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
            resolved_at=timezone.now(), resolved_by=request.user
        )
        messages.success(request, _("The alert is marked resolved."))
    return redirect("dashboard")
