import hashlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from gdpr import workflow
from gdpr.answers import answers
from gdpr.forms import AssignInfRefForm, DeclarationForm, InfRefRequestForm
from gdpr.models import DeclarationDownload, GdprDeclaration, InfRefRequest
from gdpr.pdf import declaration_pdf_filename, render_declaration_pdf
from portal.accounts.access import (
    acts_for_kombit,
    acts_for_vendor,
    can_change,
    changeable,
    get_changeable_or_404,
    get_visible_or_404,
    vendors_acted_for,
    visible,
)
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.core.paging import page_of
from portal.itsystems.models import ItSystem

_REQUESTS = InfRefRequest.objects.select_related(
    "it_system__vendor", "infref", "requested_by", "request_mail"
)


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    listing = page_of(
        request,
        InfRefRequest.with_declared(visible(request.user, _REQUESTS.all())).order_by(
            "-requested_at", "-pk"
        ),
        search=["it_system__name", "infref__name", "it_system__vendor__name"],
    )
    return render(
        request,
        "gdpr/request_list.html",
        {"listing": listing, "may_request": vendors_acted_for(request.user).exists()},
    )


@login_required
def request_create(request: HttpRequest) -> HttpResponse:
    vendors = vendors_acted_for(request.user)
    if not vendors.exists():
        raise PermissionDenied
    it_systems = ItSystem.objects.filter(vendor__in=vendors, is_sender=True)
    form = InfRefRequestForm(
        request.POST or None,
        it_systems=it_systems,
        initial={"it_system": _offered(it_systems, request.GET.get("it_system"))},
    )
    existing = None
    if request.method == "POST" and form.is_valid():
        try:
            infref_request = workflow.request_infref(
                it_system=form.cleaned_data["it_system"],
                description=form.cleaned_data["description"],
                user=request.user,
            )
        except workflow.AlreadyRequested as refusal:
            form.add_error("it_system", refusal)
            existing = _linkable(request, refusal.existing)
        else:
            messages.success(request, _("The request is sent to KOMBIT."))
            return redirect("gdpr:request", pk=infref_request.pk)
    return render(request, "gdpr/request_form.html", {"form": form, "existing_request": existing})


def _offered(it_systems, pk: str | None) -> ItSystem | None:
    """The IT system a link asks to request for (task 30, the to-do list), if the user may."""
    if not pk or not pk.isdigit():
        return None
    return it_systems.filter(pk=int(pk)).first()


def _linkable(request: HttpRequest, infref_request: InfRefRequest) -> InfRefRequest | None:
    """The request, if the page may link to it: the user may see it."""
    return visible(request.user, _REQUESTS.filter(pk=infref_request.pk)).first()


def _request_page(
    request: HttpRequest, infref_request: InfRefRequest, assign_form: AssignInfRefForm | None = None
) -> HttpResponse:
    infref = infref_request.infref
    is_kombit = acts_for_kombit(request.user)
    awaits_kombit = infref is None and not infref_request.is_withdrawn
    if is_kombit and awaits_kombit and assign_form is None:
        assign_form = AssignInfRefForm(initial={"name": workflow.proposed_infref_name()})
    declarations = (
        visible(request.user, infref.declarations.select_related("submitted_by"))
        if infref
        else GdprDeclaration.objects.none()
    )
    context = {
        "infref_request": infref_request,
        "infref": infref,
        "declarations": declarations,
        "current": infref.current_declaration() if infref else None,
        "has_draft": any(d.status == GdprDeclaration.Status.DRAFT for d in declarations),
        "step": infref_request.step,
        "steps": InfRefRequest.Step,
        "is_vendor": acts_for_vendor(request.user, infref_request.vendor),
        "is_kombit": is_kombit,
        "assign_form": assign_form,
        "may_withdraw": awaits_kombit and can_change(request.user, infref_request),
    }
    current = context["current"]
    context["renewal_overdue"] = current is not None and current.renewal_overdue(
        timezone.localdate()
    )
    return render(request, "gdpr/request_detail.html", context)


@login_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _request_page(request, get_visible_or_404(request.user, _REQUESTS, pk=pk))


@login_required
@require_POST
def request_assign(request: HttpRequest, pk: int) -> HttpResponse:
    infref_request = get_visible_or_404(request.user, _REQUESTS, pk=pk)
    if not acts_for_kombit(request.user):
        raise PermissionDenied
    form = AssignInfRefForm(request.POST)
    if form.is_valid():
        try:
            infref = workflow.assign_infref(
                infref_request, name=form.cleaned_data["name"], user=request.user
            )
        except workflow.RequestWithdrawn as refusal:
            messages.error(request, " ".join(refusal.messages))
            return redirect("gdpr:request", pk=pk)
        except ValidationError as error:
            form.add_error("name", error.messages)
        else:
            messages.success(request, _("%(name)s is assigned.") % {"name": infref.name})
            return redirect("gdpr:request", pk=pk)
    return _request_page(request, infref_request, assign_form=form)


@login_required
@require_POST
def request_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    infref_request = get_changeable_or_404(request.user, _REQUESTS, pk=pk)
    try:
        workflow.withdraw_request(infref_request, request.user)
    except ValidationError as refusal:
        messages.error(request, " ".join(refusal.messages))
    else:
        messages.success(request, _("The request is withdrawn, and KOMBIT is told by mail."))
    return redirect("gdpr:request", pk=pk)


@login_required
@require_POST
def request_mark_created(request: HttpRequest, pk: int) -> HttpResponse:
    infref_request = get_visible_or_404(request.user, _REQUESTS, pk=pk)
    if not acts_for_kombit(request.user) or infref_request.infref is None:
        raise PermissionDenied
    try:
        workflow.mark_created(infref_request.infref, request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("The InfRef is marked as created on Serviceplatformen."))
    return redirect("gdpr:request", pk=pk)


@login_required
@require_POST
def declaration_open_draft(request: HttpRequest, pk: int) -> HttpResponse:
    infref_request = get_visible_or_404(request.user, _REQUESTS, pk=pk)
    if infref_request.infref is None or not acts_for_vendor(request.user, infref_request.vendor):
        raise PermissionDenied
    draft = workflow.open_draft(infref_request.infref, request.user)
    return redirect("gdpr:declaration_edit", pk=draft.pk)


_DECLARATIONS = GdprDeclaration.objects.select_related(
    "infref__it_system__vendor", "infref__request", "submitted_by", "submission_mail"
)


@login_required
def declaration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    declaration = get_visible_or_404(request.user, _DECLARATIONS, pk=pk)
    versions = visible(request.user, declaration.infref.declarations.all())
    return render(
        request,
        "gdpr/declaration_detail.html",
        {
            "declaration": declaration,
            "answers": answers(declaration),
            "may_edit": changeable(request.user, GdprDeclaration.objects.filter(pk=pk)).exists(),
            "versions": versions,
            # The vendor may open the next version from here when this one is to be renewed.
            "is_vendor": acts_for_vendor(request.user, declaration.infref.vendor),
            "has_draft": any(v.status == GdprDeclaration.Status.DRAFT for v in versions),
            "renewal_overdue": declaration.renewal_overdue(timezone.localdate()),
        },
    )


@login_required
def declaration_edit(request: HttpRequest, pk: int) -> HttpResponse:
    declaration = get_visible_or_404(request.user, _DECLARATIONS, pk=pk)
    if not declaration.is_editable:
        messages.info(
            request,
            _("Version %(version)s is submitted and cannot be changed.")
            % {"version": declaration.version},
        )
        return redirect("gdpr:declaration", pk=pk)
    declaration = get_changeable_or_404(request.user, _DECLARATIONS, pk=pk)
    form = DeclarationForm(request.POST or None, instance=declaration)
    if request.method == "POST" and form.is_valid():
        try:
            form.save()
        except ValidationError as error:  # submitted meanwhile, in another tab
            messages.error(request, " ".join(error.messages))
            return redirect("gdpr:declaration", pk=pk)
        if "submit" not in request.POST:
            messages.success(request, _("The draft is saved."))
            return redirect("gdpr:declaration_edit", pk=pk)
        try:
            workflow.submit_declaration(declaration, request.user)
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, problems in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, problems)
            else:
                messages.error(request, " ".join(error.messages))
                return redirect("gdpr:declaration", pk=pk)
        else:
            messages.success(
                request,
                _("Version %(version)s is submitted and mailed to KOMBIT as a PDF.")
                % {"version": declaration.version},
            )
            return redirect("gdpr:request", pk=declaration.infref.request.pk)
    return render(request, "gdpr/declaration_form.html", {"form": form, "declaration": declaration})


@login_required
def declaration_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    declaration = get_visible_or_404(request.user, _DECLARATIONS, pk=pk)
    pdf = render_declaration_pdf(declaration)
    sha256 = hashlib.sha256(pdf).hexdigest()
    DeclarationDownload.objects.create(declaration=declaration, user=request.user, sha256=sha256)
    record(
        request.user,
        AuditEvent.Action.DOWNLOAD,
        declaration,
        concerns=[declaration.infref.vendor, *declaration.controllers.all()],
        sha256=sha256,
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="{declaration_pdf_filename(declaration)}"'
    )
    return response
