import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect
from lxml import etree

from portal.accounts.access import (
    acts_for_a_vendor,
    acts_for_kombit,
    can_change,
    get_changeable_or_404,
    get_visible_or_404,
    may_download_copy,
    route_states_settable,
    vendors_acted_for,
    visible,
)
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.core.paging import page_of
from portal.itsystems.models import ItSystem
from transfers import (
    keys,
    list_export,
    list_filters,
    list_options,
    listing,
    send_once,
    states,
    tasks,
)
from transfers.downloads import content_disposition
from transfers.endpoints import refusal_message
from transfers.forms import AccountForm, GenerateKeyForm, ImportKeyForm, RouteForm, SendForm
from transfers.models import ReceivedFile, Route, SftpAccount, Transfer
from transfers.queueing import blockers_of
from transfers.sftp import (
    EndpointRefused,
    EndpointUnresolved,
    SftpError,
    host_key_fingerprint,
    probe_host_key,
)

_TRANSFERS = Transfer.objects.select_related(
    "route__infref", "route__municipality", "route__sender", "route__receiver", "account"
)
_ROUTES = Route.objects.select_related("infref", "sender", "receiver", "municipality")
# What a row of the list shows (templates/transfers/_rows.html, templatetags/transfer_list.py).
_ROW_FIELDS = (
    "state",
    "original_name",
    "size",
    "bytes_done",
    "queued_at",
    "route__infref__name",
    "route__sender__name",
    "route__receiver__name",
    "route__municipality__name",
)
PROGRESS_SECONDS = 1
ROWS_SECONDS_LIVE, ROWS_SECONDS_SETTLED = 2, 15


def fragment(page_url: Callable[..., str]):
    """A piece of a page that htmx polls. Without htmx (no JavaScript, or a copied link) the
    request goes on to the whole page; a session that ended sends the browser to log in."""

    def decorate(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                if request.htmx:
                    back = request.htmx.current_url_abs_path or page_url(request, *args, **kwargs)
                    return HttpResponseClientRedirect(redirect_to_login(back).url)
                return redirect_to_login(request.get_full_path())
            if not request.htmx:
                return redirect(page_url(request, *args, **kwargs))
            response = view(request, *args, **kwargs)
            add_never_cache_headers(response)
            return response

        return wrapper

    return decorate


def _url(name: str, form: list_filters.TransferFilter, *, leave_out: str = "", **extra: str) -> str:
    """The URL of `name` with the list's valid filters but `leave_out`, and `extra` (empty
    values left out)."""
    params = QueryDict(mutable=True)
    params.update({key: value for key, value in form.query().items() if key != leave_out})
    params.update({key: value for key, value in extra.items() if value})
    query = params.urlencode()
    return reverse(name) + (f"?{query}" if query else "")


def _filter_form(request: HttpRequest, options: list_options.Options | None = None):
    form = list_filters.TransferFilter(request.GET, options)
    form.is_valid()  # a field that does not validate is left out; the others still filter
    return form


def _results(request: HttpRequest, form: list_filters.TransferFilter) -> dict:
    """The rows of the page asked for, its links, and how often the page asks again."""
    transfers = list_filters.apply_filters(listing.transfers_seen(request.user), form.values)
    cursor = request.GET.get("cursor", "")
    # What the rows show and nothing more: the trigger and receipt alone are kilobytes a row,
    # and each moment and model read is parsed and built for every one of the fifty.
    page = listing.read_page(transfers, cursor, only=_ROW_FIELDS)
    all_final = all(transfer.state in Transfer.State.FINAL for transfer in page.rows)
    return {
        "page": page,
        "newer_url": page.newer and _url("transfers:list", form, cursor=page.newer),
        "older_url": page.older and _url("transfers:list", form, cursor=page.older),
        "newest_url": _url("transfers:list", form),
        "export_url": _url("transfers:export", form),
        # The page polls for the rows it shows: same filters, same cursor, and the states shown.
        "poll_url": _url(
            "transfers:rows",
            form,
            cursor="" if page.is_first else cursor,
            shown=listing.encode_states(page.rows),
        ),
        "poll_seconds": ROWS_SECONDS_SETTLED if all_final else ROWS_SECONDS_LIVE,
    }


@login_required
def transfer_list(request: HttpRequest) -> HttpResponse:
    form = _filter_form(request, list_options.filter_options(request.user))
    return render(
        request,
        "transfers/transfer_list.html",
        {
            "form": form,
            "filtered": bool(form.query()),
            "may_send": acts_for_a_vendor(request.user),
            **_chosen_route(request, form),
            **_results(request, form),
        },
    )


def _chosen_route(request: HttpRequest, form: list_filters.TransferFilter) -> dict:
    """The route the list is filtered by, in words, and the list without that filter."""
    route_id = form.values.get("route")
    if route_id is None:
        return {}
    routes = Route.objects.select_related("infref", "sender", "receiver", "municipality")
    route = visible(request.user, routes).filter(pk=route_id).first()
    return {
        # A route the user may not see shows no transfers either; it is named by its number.
        "chosen_route": listing.route_label(route)
        if route
        else _("Route %(number)s") % {"number": route_id},
        "without_route_url": _url("transfers:list", form, leave_out="route"),
    }


def _list_page_url(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("shown", None)
    return reverse("transfers:list") + (f"?{params.urlencode()}" if params else "")


@fragment(_list_page_url)
def transfer_rows(request: HttpRequest) -> HttpResponse:
    """The list's rows, polled: only the user's transfers, with the filters and cursor given."""
    context = _results(request, _filter_form(request))
    shown = listing.decode_states(request.GET.get("shown", ""))
    context["changes"] = [
        transfer
        for transfer in context["page"].rows
        if shown.get(transfer.pk, transfer.state) != transfer.state
    ]
    return render(request, "transfers/_rows.html", context)


@login_required
def transfer_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered rows as CSV, streamed: a million rows never sit in memory at once."""
    form = _filter_form(request)
    transfers = list_filters.apply_filters(listing.transfers_seen(request.user), form.values)
    response = StreamingHttpResponse(
        list_export.csv_lines(transfers), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{list_export.file_name()}"'
    add_never_cache_headers(response)
    return response


# One transfer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """How far a send has come, read from the row the worker updates."""

    done: int
    size: int
    percent: int
    bytes_per_second: float | None
    seconds_left: int | None

    @classmethod
    def of(cls, transfer: Transfer, now: datetime | None = None) -> "Progress":
        size = transfer.size
        awaiting = transfer.state in Transfer.State.AWAITING_RECEIPT
        done = size if awaiting else min(transfer.bytes_done, size)
        percent = 100 if size == 0 else done * 100 // size
        rate = left = None
        if transfer.state == Transfer.State.SENDING and transfer.started_at and done:
            # bytes_done is written with heartbeat_at, so that is the moment it was true.
            until = transfer.heartbeat_at or now or timezone.now()
            elapsed = (until - transfer.started_at).total_seconds()
            if elapsed > 0:
                rate = done / elapsed
                left = math.ceil((size - done) / rate) or None
        return cls(done, size, percent, rate, left)

    @property
    def done_text(self) -> str:
        return _amount(self.done)

    @property
    def size_text(self) -> str:
        return _amount(self.size)

    @property
    def rate_text(self) -> str:
        if self.bytes_per_second is None:
            return ""
        return _("%(rate)s MB/s") % {
            "rate": number_format(self.bytes_per_second / 1e6, decimal_pos=1)
        }

    @property
    def time_left_text(self) -> str:
        if self.seconds_left is None:
            return ""
        minutes, seconds = divmod(self.seconds_left, 60)
        hours, minutes = divmod(minutes, 60)
        if hours:
            return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}
        if minutes:
            return _("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": seconds}
        return _("%(seconds)d s") % {"seconds": seconds}


def _amount(size: int) -> str:
    if size < 10**6:
        return _("%(bytes)s bytes") % {"bytes": number_format(size, force_grouping=True)}
    return _("%(megabytes)s MB") % {"megabytes": number_format(size / 1e6, decimal_pos=1)}


@dataclass(frozen=True)
class Step:
    label: str
    at: datetime | None


def timeline(transfer: Transfer) -> list[Step]:
    """What happened when; steps still to come are listed without a time while it runs."""
    final = transfer.state in Transfer.State.FINAL
    steps = [
        Step(_("Queued"), transfer.queued_at),
        Step(_("Started"), transfer.started_at),
        Step(_("Sent"), transfer.sent_at),
    ]
    if final:
        steps = [step for step in steps if step.at]
        steps.append(Step(transfer.get_state_display(), transfer.finished_at))
    else:
        steps.append(Step(_("Receipt from KOMBIT"), None))
    return steps


def pretty_xml(text: str) -> str:
    """The XML indented for reading, or the text as it is when it does not parse."""
    if not text:
        return ""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True
    )
    try:
        root = etree.fromstring(text.encode(), parser)
    except (etree.XMLSyntaxError, ValueError):
        return text
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode")


def _status(request: HttpRequest, transfer: Transfer, shown: str = "") -> dict:
    """What the polled status panel shows."""
    final = transfer.state in Transfer.State.FINAL
    return {
        "transfer": transfer,
        "final": final,
        "receipt_timeout_minutes": settings.TRANSFER_RECEIPT_TIMEOUT_SECONDS // 60,
        "unreadable_receipt_kept": transfer.state == Transfer.State.NO_RECEIPT
        and tasks.unreadable_receipt(transfer.remote_name).is_file(),
        "gives_up_at": transfer.waiting_since
        and transfer.waiting_since + timedelta(seconds=settings.TRANSFER_OUTAGE_WAIT_SECONDS),
        "progress": None if final else Progress.of(transfer),
        "timeline": timeline(transfer),
        "may_change": can_change(request.user, transfer),
        "may_resubmit": transfer.state in Transfer.State.RESUBMITTABLE,
        "may_cancel": states.allowed(transfer.state, Transfer.State.CANCELLED),
        "poll_url": f"{reverse('transfers:progress', args=[transfer.pk])}?shown={transfer.state}",
        "poll_seconds": PROGRESS_SECONDS,
        # Told to screen readers only when the state is not the one the page last showed.
        "announce": shown in Transfer.State.values and shown != transfer.state,
        "was_running": shown in Transfer.State.values and shown not in Transfer.State.FINAL,
    }


@login_required
def transfer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    transfer = get_visible_or_404(request.user, _TRANSFERS, pk=pk)
    may_download = may_download_copy(request.user, transfer)
    return render(
        request,
        "transfers/transfer_detail.html",
        {
            **_status(request, transfer),
            "may_download": may_download,
            "copy_kept": may_download and Path(transfer.payload).is_file(),
            "trigger": pretty_xml(transfer.trigger_xml),
            "receipt": pretty_xml(transfer.receipt_xml),
        },
    )


@login_required
def transfer_unreadable_receipt(request: HttpRequest, pk: int) -> FileResponse:
    """The receipt that could not be read, byte for byte as the platform wrote it."""
    transfer = get_visible_or_404(request.user, _TRANSFERS, pk=pk)
    path = tasks.unreadable_receipt(transfer.remote_name)
    if not path.is_file():
        raise Http404
    name = f"{transfer.remote_name}.sftpreceipt"
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=name, content_type="application/octet-stream"
    )


@fragment(lambda request, pk: reverse("transfers:detail", args=[pk]))
def transfer_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The status panel of one transfer, polled every second until the state is final."""
    transfer = get_visible_or_404(request.user, _TRANSFERS, pk=pk)
    return render(
        request,
        "transfers/_progress.html",
        _status(request, transfer, request.GET.get("shown", "")),
    )


def _audit_transfer(request: HttpRequest, action: str, transfer: Transfer) -> None:
    tasks.audit(request.user, action, transfer)


def _audit_account(request: HttpRequest, action: str, account: SftpAccount, **details) -> None:
    record(request.user, action, account, concerns=[account.it_system.vendor], **details)


@login_required
def transfer_download(request: HttpRequest, pk: int) -> FileResponse:
    transfer = get_visible_or_404(request.user, _TRANSFERS, pk=pk)
    if not may_download_copy(request.user, transfer):
        raise PermissionDenied
    path = Path(transfer.payload)
    if not path.is_file():
        raise Http404
    response = FileResponse(path.open("rb"), as_attachment=True, filename=transfer.original_name)
    response["X-Content-SHA256"] = transfer.sha256
    _audit_transfer(request, AuditEvent.Action.DOWNLOAD, transfer)
    return response


@login_required
def send(request: HttpRequest) -> HttpResponse:
    vendors = vendors_acted_for(request.user)
    if not vendors.exists():
        raise PermissionDenied
    routes = _ROUTES.filter(sender__vendor__in=vendors)
    form = SendForm(request.POST or None, request.FILES or None, routes=routes, user=request.user)
    if request.method != "POST":
        return render(request, "transfers/send.html", {"form": form})
    key = form.send_key
    # Before the form is judged: Back and send again may come without the file or the route.
    earlier = send_once.queued_with(request.user, key)
    if earlier is not None:
        return _already_queued(request, earlier)
    if form.is_valid():
        route, upload = form.cleaned_data["route"], form.cleaned_data["data_file"]
        try:
            queued = send_once.queue_once(route, upload, user=request.user, key=key)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            if queued.again:
                return _already_queued(request, queued.transfer)
            messages.success(request, _("The file is queued."))
            return redirect("transfers:detail", pk=queued.transfer.pk)
    return render(request, "transfers/send.html", {"form": form})


def _already_queued(request: HttpRequest, transfer: Transfer) -> HttpResponse:
    messages.info(request, _("The file is already queued."))
    return redirect("transfers:detail", pk=transfer.pk)


@login_required
@require_POST
def transfer_resubmit(request: HttpRequest, pk: int) -> HttpResponse:
    transfer = get_changeable_or_404(request.user, Transfer.objects.all(), pk=pk)
    if not Path(transfer.payload).exists():
        messages.error(request, _("The local copy of the file is gone; queue the file again."))
    elif tasks.resubmit(transfer, by=request.user):
        messages.success(request, _("The transfer is queued again."))
    else:
        messages.error(
            request, _("Only a failed transfer, or one with no receipt, can be sent again.")
        )
    return redirect("transfers:detail", pk=pk)


@login_required
@require_POST
def transfer_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    transfer = get_changeable_or_404(request.user, Transfer.objects.all(), pk=pk)
    if tasks.cancel(transfer, by=request.user):
        messages.success(request, _("The transfer is cancelled."))
    else:
        messages.error(request, _("Only a queued transfer can be cancelled."))
    return redirect("transfers:detail", pk=pk)


@login_required
def received_list(request: HttpRequest) -> HttpResponse:
    received = visible(
        request.user,
        ReceivedFile.objects.select_related("account", "route__municipality", "route__sender"),
    )
    paged = page_of(
        request,
        received.order_by("-received_at", "-pk"),
        search=["remote_name", "sender_username", "route__sender__name"],
    )
    files = list(paged.page.object_list)
    # The name the file had when it was sent, where the portal sent it: the platform renames it
    # on the way (<sftpuser>_FDD_<uuid>), and the sender's own name is what people know it by.
    sent_as = dict(
        Transfer.objects.filter(
            file_transfer_uuid__in=[f.file_transfer_uuid for f in files if f.file_transfer_uuid]
        ).values_list("file_transfer_uuid", "original_name")
    )
    rows = [(file, sent_as.get(file.file_transfer_uuid, "")) for file in files]
    return render(request, "transfers/received_list.html", {"listing": paged, "rows": rows})


@login_required
def received_download(request: HttpRequest, pk: int) -> FileResponse:
    received = get_visible_or_404(
        request.user, ReceivedFile.objects.filter(state=ReceivedFile.State.RECEIVED), pk=pk
    )
    path = Path(received.stored_path)
    if not path.is_file():
        raise Http404
    # Stored under a name of the portal's (transfers.fetch.local_name), offered under its own.
    response = FileResponse(path.open("rb"), as_attachment=True, filename=received.remote_name)
    response["Content-Disposition"] = content_disposition(received.remote_name)
    response["X-Content-SHA256"] = received.sha256
    return response


@login_required
def route_list(request: HttpRequest) -> HttpResponse:
    routes = visible(request.user, _ROUTES.select_related("integration"))
    # `?state=ordered`: KOMBIT's to-do list links to the routes that wait for it.
    state = request.GET.get("state", "")
    if state in Route.State.values:
        routes = routes.filter(state=state)
    else:
        state = ""
    paged = page_of(
        request,
        routes.order_by("infref__number", "municipality__name", "pk"),
        search=["infref__name", "municipality__name", "sender__name", "receiver__name"],
    )
    routes = list(paged.page.object_list)
    rows = list(zip(routes, blockers_of(routes), strict=True))
    return render(
        request,
        "transfers/route_list.html",
        {
            "listing": paged,
            "rows": rows,
            "may_create": acts_for_a_vendor(request.user),
            "is_kombit": acts_for_kombit(request.user),
            # KOMBIT sees every route but no transfer: no link to an empty list.
            "sees_transfers": visible(request.user, Transfer.objects.all()).exists(),
            "states": Route.State.choices,
            "state": state,
        },
    )


@login_required
def route_create(request: HttpRequest) -> HttpResponse:
    vendors = vendors_acted_for(request.user)
    if not vendors.exists():
        raise PermissionDenied
    if request.method == "POST":
        form = RouteForm(request.POST, vendors=vendors)
    else:
        # Links from an integration's task 70 say which route: `?integration=&municipality=`.
        form = RouteForm(vendors=vendors, initial=RouteForm.initial_from(request.GET, vendors))
    if request.method == "POST" and form.is_valid():
        route = form.save()
        record(
            request.user,
            AuditEvent.Action.ROUTE_CHANGED,
            route,
            concerns=route.parties(),
            state=route.state,
        )
        messages.success(
            request,
            _(
                "The route is ordered. KOMBIT establishes it on Serviceplatformen next; "
                "its state here changes when that is done."
            ),
        )
        return redirect("transfers:routes")
    return render(
        request,
        "transfers/form.html",
        {"form": form, "title": _("Order a route"), "submit": _("Order the route")},
    )


@login_required
@require_POST
def route_state(request: HttpRequest, pk: int) -> HttpResponse:
    route = get_changeable_or_404(
        request.user,
        Route.objects.select_related("sender__vendor", "receiver__vendor", "municipality"),
        pk=pk,
    )
    state = request.POST.get("state")
    if state not in route_states_settable(request.user, route):
        raise PermissionDenied
    route.state = state
    route.save(update_fields=["state", "changed_at"])
    record(
        request.user,
        AuditEvent.Action.ROUTE_CHANGED,
        route,
        concerns=route.parties(),
        state=state,
    )
    messages.success(request, _("The route is %(state)s.") % {"state": route.get_state_display()})
    return redirect("transfers:routes")


@login_required
def account_list(request: HttpRequest) -> HttpResponse:
    accounts = visible(request.user, SftpAccount.objects.select_related("it_system__vendor"))
    paged = page_of(
        request,
        accounts.order_by("it_system__name", "environment", "pk"),
        search=["username", "it_system__name"],
    )
    return render(
        request,
        "transfers/account_list.html",
        {"listing": paged, "may_create": vendors_acted_for(request.user).exists()},
    )


@login_required
def account_create(request: HttpRequest) -> HttpResponse:
    vendors = vendors_acted_for(request.user)
    if not vendors.exists():
        raise PermissionDenied
    it_systems = ItSystem.objects.filter(vendor__in=vendors)
    # Tasks 50 and 60 link here for their IT system; one the user may not register for is
    # ignored.
    chosen = request.GET.get("it_system", "")
    initial = {"it_system": int(chosen)} if chosen.isdigit() else {}
    if initial and not it_systems.filter(pk=initial["it_system"]).exists():
        initial = {}
    form = AccountForm(request.POST or None, it_systems=it_systems, initial=initial)
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
        _audit_account(
            request, AuditEvent.Action.KEY_GENERATED, account, fingerprint=pair.fingerprint
        )
        messages.success(
            request, _("A new key is made. Register the public key below with KOMBIT.")
        )
    return redirect("transfers:account", pk=pk)


@login_required
@require_POST
@sensitive_post_parameters("passphrase")
@sensitive_variables()
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
            _audit_account(
                request, AuditEvent.Action.KEY_IMPORTED, account, fingerprint=pair.fingerprint
            )
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
    except (EndpointRefused, EndpointUnresolved):
        # Not "did not answer": nothing was asked, and the message tells nothing of the target
        # (not even whether its name exists).
        messages.error(request, refusal_message(account.host, account.port))
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
        _audit_account(
            request,
            AuditEvent.Action.HOST_KEY_CONFIRMED,
            account,
            fingerprint=account.host_key_fingerprint,
        )
    messages.success(request, _("The host key is pinned."))
    return redirect("transfers:account", pk=pk)
