from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.accounts.access import (
    acts_for_kombit,
    can_change,
    get_changeable_or_404,
    get_visible_or_404,
    vendors_acted_for,
    visible,
)
from portal.itsystems.models import ItSystem
from transfers import keys, tasks
from transfers.forms import AccountForm, GenerateKeyForm, ImportKeyForm, RouteForm, SendForm
from transfers.models import ReceivedFile, Route, SftpAccount, Transfer
from transfers.queueing import queue_send, route_blockers
from transfers.sftp import SftpError, host_key_fingerprint, probe_host_key

PAGE = 100
_TRANSFERS = Transfer.objects.select_related(
    "route__infref", "route__municipality", "route__sender", "route__receiver", "account"
)
_ROUTES = Route.objects.select_related("infref", "sender", "receiver", "municipality")


@login_required
def transfer_list(request: HttpRequest) -> HttpResponse:
    transfers = visible(request.user, _TRANSFERS.all())
    state = request.GET.get("state", "")
    if state in Transfer.State.values:
        transfers = transfers.filter(state=state)
    return render(
        request,
        "transfers/transfer_list.html",
        {
            "transfers": transfers[:PAGE],
            "state": state,
            "states": Transfer.State.choices,
            "may_send": vendors_acted_for(request.user).exists(),
        },
    )


@login_required
def transfer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    transfer = get_visible_or_404(request.user, _TRANSFERS, pk=pk)
    return render(
        request,
        "transfers/transfer_detail.html",
        {"transfer": transfer, "may_change": can_change(request.user, transfer)},
    )


@login_required
def send(request: HttpRequest) -> HttpResponse:
    vendors = vendors_acted_for(request.user)
    if not vendors.exists():
        raise PermissionDenied
    routes = _ROUTES.filter(sender__vendor__in=vendors)
    form = SendForm(request.POST or None, request.FILES or None, routes=routes)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["data_file"]
        try:
            transfer = queue_send(
                form.cleaned_data["route"], upload, original_name=upload.name, user=request.user
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("The file is queued."))
            return redirect("transfers:detail", pk=transfer.pk)
    return render(request, "transfers/send.html", {"form": form})


@login_required
@require_POST
def transfer_resubmit(request: HttpRequest, pk: int) -> HttpResponse:
    transfer = get_changeable_or_404(request.user, Transfer.objects.all(), pk=pk)
    if not Path(transfer.payload).exists():
        messages.error(request, _("The local copy of the file is gone; queue the file again."))
    elif tasks.resubmit(transfer):
        messages.success(request, _("The transfer is queued again."))
    else:
        messages.error(request, _("Only a failed transfer can be sent again."))
    return redirect("transfers:detail", pk=pk)


@login_required
@require_POST
def transfer_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    transfer = get_changeable_or_404(request.user, Transfer.objects.all(), pk=pk)
    cancelled = Transfer.objects.filter(pk=transfer.pk, state=Transfer.State.QUEUED).update(
        state=Transfer.State.CANCELLED, finished_at=timezone.now()
    )
    if cancelled:
        messages.success(request, _("The transfer is cancelled."))
    else:
        messages.error(request, _("Only a queued transfer can be cancelled."))
    return redirect("transfers:detail", pk=pk)


@login_required
def received_list(request: HttpRequest) -> HttpResponse:
    received = visible(
        request.user, ReceivedFile.objects.select_related("account", "route__municipality")
    )
    return render(request, "transfers/received_list.html", {"received": received[:PAGE]})


@login_required
def received_download(request: HttpRequest, pk: int) -> FileResponse:
    received = get_visible_or_404(
        request.user, ReceivedFile.objects.filter(state=ReceivedFile.State.RECEIVED), pk=pk
    )
    path = Path(received.stored_path)
    if not path.is_file():
        raise Http404
    response = FileResponse(path.open("rb"), as_attachment=True, filename=received.remote_name)
    response["X-Content-SHA256"] = received.sha256
    return response


@login_required
def route_list(request: HttpRequest) -> HttpResponse:
    routes = visible(request.user, _ROUTES.all())
    rows = [(route, route_blockers(route)) for route in routes[:PAGE]]
    return render(
        request,
        "transfers/route_list.html",
        {
            "rows": rows,
            "may_create": vendors_acted_for(request.user).exists(),
            "is_kombit": acts_for_kombit(request.user),
            "states": Route.State.choices,
        },
    )


@login_required
def route_create(request: HttpRequest) -> HttpResponse:
    vendors = vendors_acted_for(request.user)
    if not vendors.exists():
        raise PermissionDenied
    form = RouteForm(request.POST or None, vendors=vendors)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("The route is ordered."))
        return redirect("transfers:routes")
    return render(request, "transfers/form.html", {"form": form, "title": _("Order a route")})


@login_required
@require_POST
def route_state(request: HttpRequest, pk: int) -> HttpResponse:
    route = get_changeable_or_404(request.user, Route.objects.all(), pk=pk)
    state = request.POST.get("state")
    # KOMBIT establishes routes on the platform; the vendor may suspend its own.
    allowed = Route.State.values if acts_for_kombit(request.user) else [Route.State.SUSPENDED]
    if state not in allowed:
        raise PermissionDenied
    route.state = state
    route.save(update_fields=["state", "changed_at"])
    messages.success(request, _("The route is %(state)s.") % {"state": route.get_state_display()})
    return redirect("transfers:routes")


@login_required
def account_list(request: HttpRequest) -> HttpResponse:
    accounts = visible(request.user, SftpAccount.objects.select_related("it_system__vendor"))
    return render(
        request,
        "transfers/account_list.html",
        {"accounts": accounts, "may_create": vendors_acted_for(request.user).exists()},
    )


@login_required
def account_create(request: HttpRequest) -> HttpResponse:
    vendors = vendors_acted_for(request.user)
    if not vendors.exists():
        raise PermissionDenied
    form = AccountForm(request.POST or None, it_systems=ItSystem.objects.filter(vendor__in=vendors))
    if request.method == "POST" and form.is_valid():
        account = form.save()
        messages.success(request, _("The account is registered; now make or import its key."))
        return redirect("transfers:account", pk=account.pk)
    return render(
        request, "transfers/form.html", {"form": form, "title": _("Register an SFTP account")}
    )


@login_required
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_visible_or_404(
        request.user, SftpAccount.objects.select_related("it_system__vendor"), pk=pk
    )
    return render(
        request,
        "transfers/account_detail.html",
        {
            "account": account,
            "may_change": can_change(request.user, account),
            "generate_form": GenerateKeyForm(),
            "import_form": ImportKeyForm(),
        },
    )


def _store_key(account: SftpAccount, pair: keys.KeyPair) -> None:
    account.key_kind = pair.kind
    account.public_key = pair.public_openssh
    account.key_fingerprint = pair.fingerprint
    account.private_key_encrypted = pair.private_encrypted
    account.key_created_at = timezone.now()
    account.save()


@login_required
@require_POST
def account_generate_key(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_changeable_or_404(request.user, SftpAccount.objects.all(), pk=pk)
    form = GenerateKeyForm(request.POST)
    if form.is_valid():
        pair = keys.generate(form.cleaned_data["kind"], comment=account.username)
        _store_key(account, pair)
        messages.success(
            request, _("A new key is made. Register the public key below with KOMBIT.")
        )
    return redirect("transfers:account", pk=pk)


@login_required
@require_POST
def account_import_key(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_changeable_or_404(request.user, SftpAccount.objects.all(), pk=pk)
    form = ImportKeyForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            pair = keys.import_private_key(
                form.cleaned_data["key_file"].read(),
                form.cleaned_data["passphrase"] or None,
                comment=account.username,
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            _store_key(account, pair)
            messages.success(
                request, _("The key is imported; the private key is stored encrypted.")
            )
    else:
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
    return redirect("transfers:account", pk=pk)


@login_required
@require_POST
def account_probe_host_key(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_changeable_or_404(request.user, SftpAccount.objects.all(), pk=pk)
    try:
        offered = probe_host_key(account.host, account.port)
    except (SftpError, OSError) as error:
        messages.error(request, _("The server did not answer: %(error)s") % {"error": error})
    else:
        account.offered_host_key = offered
        account.offered_host_key_fingerprint = host_key_fingerprint(offered)
        account.save(update_fields=["offered_host_key", "offered_host_key_fingerprint"])
    return redirect("transfers:account", pk=pk)


@login_required
@require_POST
def account_confirm_host_key(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_changeable_or_404(request.user, SftpAccount.objects.all(), pk=pk)
    # The form carries the fingerprint the person saw, so a key that changed meanwhile is not
    # pinned by a click meant for another.
    if (
        not account.offered_host_key
        or request.POST.get("fingerprint") != account.offered_host_key_fingerprint
    ):
        messages.error(request, _("The server's key changed while you looked; check it again."))
        return redirect("transfers:account", pk=pk)
    with transaction.atomic():
        account.host_key = account.offered_host_key
        account.host_key_fingerprint = account.offered_host_key_fingerprint
        account.host_key_confirmed_by = request.user
        account.host_key_confirmed_at = timezone.now()
        account.host_key_mismatch_at = None
        account.offered_host_key = account.offered_host_key_fingerprint = ""
        account.save()
    messages.success(request, _("The host key is pinned."))
    return redirect("transfers:account", pk=pk)
