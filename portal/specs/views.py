import mimetypes

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.forms.utils import ErrorDict
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.accounts.access import can_change, get_changeable_or_404, get_visible_or_404, visible
from portal.core.paging import page_of
from portal.onboarding.models import Integration
from portal.specs import versions as service
from portal.specs.diff import diff_versions
from portal.specs.export import render_version_pdf, version_pdf_filename
from portal.specs.forms import (
    MAX_FIELDS,
    DiffForm,
    DocumentUploadForm,
    VersionForm,
    field_formset,
)
from portal.specs.models import DataSpecification, SpecificationDocument, SpecificationVersion

MORE_ROWS = 5

_INTEGRATIONS = Integration.objects.select_related("sender__vendor", "receiver__vendor", "infref")
_VERSIONS = SpecificationVersion.objects.select_related(
    "specification__integration__sender__vendor",
    "specification__integration__receiver__vendor",
    "created_by",
)
_DOCUMENTS = SpecificationDocument.objects.select_related("version__specification__integration")

CONTENT_TYPES = {
    SpecificationDocument.Kind.PDF: "application/pdf",
    SpecificationDocument.Kind.DOCX: (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    ),
    SpecificationDocument.Kind.XLSX: (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ),
    SpecificationDocument.Kind.CSV: "text/csv",
    SpecificationDocument.Kind.XSD: "application/xml",
    SpecificationDocument.Kind.JSON_SCHEMA: "application/schema+json",
    SpecificationDocument.Kind.MARKDOWN: "text/markdown; charset=utf-8",
}


def _specification(integration: Integration) -> DataSpecification | None:
    return DataSpecification.objects.filter(integration=integration).first()


@login_required
def specification_list(request: HttpRequest) -> HttpResponse:
    listing = page_of(
        request,
        visible(request.user, _INTEGRATIONS.all()).order_by("name", "pk"),
        search=["name"],
    )
    integrations = list(listing.page.object_list)
    latest: dict[int, SpecificationVersion] = {}
    for version in SpecificationVersion.objects.filter(
        specification__integration__in=[integration.pk for integration in integrations]
    ).select_related("specification"):
        latest.setdefault(version.specification.integration_id, version)
    rows = [(integration, latest.get(integration.pk)) for integration in integrations]
    return render(request, "specs/specification_list.html", {"listing": listing, "rows": rows})


@login_required
def specification_detail(request: HttpRequest, integration_pk: int) -> HttpResponse:
    integration = get_visible_or_404(request.user, _INTEGRATIONS, pk=integration_pk)
    specification = _specification(integration)
    versions = (
        specification.versions.select_related("created_by").annotate(
            field_count=Count("fields", distinct=True),
            document_count=Count("documents", distinct=True),
        )
        if specification
        else SpecificationVersion.objects.none()
    )
    return render(
        request,
        "specs/specification_detail.html",
        {
            "integration": integration,
            "versions": versions,
            "may_change": can_change(request.user, integration),
        },
    )


@login_required
def version_create(request: HttpRequest, integration_pk: int) -> HttpResponse:
    integration = get_changeable_or_404(request.user, _INTEGRATIONS, pk=integration_pk)
    specification = _specification(integration)
    previous = specification.latest_version() if specification else None
    data = request.POST if request.method == "POST" else None
    if data is not None and "add_rows" in data:
        data = _with_more_rows(data)
    form = VersionForm(data, request.FILES or None, previous=previous)
    fields = field_formset(data, previous=previous)
    if data is not None and "add_rows" in data:
        _not_judged_yet(form, fields)
    elif data is not None and form.is_valid() and fields.is_valid():
        try:
            version = service.create_version(
                integration,
                major=form.cleaned_data["major"],
                minor=form.cleaned_data["minor"],
                structure=form.structure,
                fields=fields.field_specs(),
                documents=form.cleaned_data["documents"],
                user=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            if previous is not None and integration.infref_id and version.major == previous.major:
                messages.warning(
                    request,
                    _(
                        "Version %(version)s is saved. The GDPR declaration covers an earlier "
                        "version: submit a new one within %(days)s days; files may be sent "
                        "until then."
                    )
                    % {"version": version.label, "days": settings.DECLARATION_RENEWAL_DAYS},
                )
            elif previous is not None and integration.infref_id:
                messages.warning(
                    request,
                    _(
                        "Version %(version)s is saved. The GDPR declaration covers an earlier "
                        "version: a new declaration must be submitted before files may be sent "
                        "again."
                    )
                    % {"version": version.label},
                )
            else:
                messages.success(
                    request, _("Version %(version)s is saved.") % {"version": version.label}
                )
            return redirect("specs:version", pk=version.pk)
    return render(
        request,
        "specs/version_form.html",
        {"integration": integration, "form": form, "fields": fields, "previous": previous},
    )


def _with_more_rows(data: QueryDict) -> QueryDict:
    data = data.copy()
    try:
        total = int(data.get("fields-TOTAL_FORMS", ""))
    except ValueError:
        total = 0
    data["fields-TOTAL_FORMS"] = str(max(0, min(total + MORE_ROWS, MAX_FIELDS)))
    return data


def _not_judged_yet(form: VersionForm, fields) -> None:
    """Show what was entered, with room for more fields, and no errors: it is not saved yet."""
    for each in [form, *fields.forms]:
        each._errors = ErrorDict()
        each.cleaned_data = {}
    fields._errors = [ErrorDict() for _form in fields.forms]
    fields._non_form_errors = fields.error_class()


def _version_page(
    request: HttpRequest, version: SpecificationVersion, upload_form: DocumentUploadForm | None
) -> HttpResponse:
    may_change = can_change(request.user, version)
    if may_change and upload_form is None:
        upload_form = DocumentUploadForm()
    return render(
        request,
        "specs/version_detail.html",
        {
            "version": version,
            "integration": version.integration,
            "fields": version.fields.all(),
            "documents": version.documents.select_related("uploaded_by"),
            "upload_form": upload_form if may_change else None,
            "compare": _neighbours(version),
        },
    )


def _neighbours(version: SpecificationVersion) -> tuple | None:
    """The pair to compare first: the version before this one, or else the one after it."""
    others = version.specification.versions.exclude(pk=version.pk)
    lower = others.filter(
        Q(major__lt=version.major) | Q(major=version.major, minor__lt=version.minor)
    ).first()
    if lower is not None:
        return (lower, version)
    higher = others.order_by("major", "minor").first()
    return (version, higher) if higher is not None else None


@login_required
def version_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _version_page(request, get_visible_or_404(request.user, _VERSIONS, pk=pk), None)


@login_required
@require_POST
def document_upload(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_changeable_or_404(request.user, _VERSIONS, pk=pk)
    form = DocumentUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _version_page(request, version, form)
    added = service.add_documents(version, form.cleaned_data["documents"], request.user)
    messages.success(
        request,
        _("Added to version %(version)s: %(names)s.")
        % {"version": version.label, "names": ", ".join(d.original_name for d in added)},
    )
    return redirect("specs:version", pk=version.pk)


@login_required
def document_download(request: HttpRequest, pk: int) -> FileResponse:
    document = get_visible_or_404(request.user, _DOCUMENTS, pk=pk)
    try:
        file = document.file.open("rb")
    except FileNotFoundError as error:
        raise Http404 from error
    content_type = CONTENT_TYPES.get(document.kind) or (
        mimetypes.guess_type(document.original_name)[0] or "application/octet-stream"
    )
    return FileResponse(
        file, as_attachment=True, filename=document.original_name, content_type=content_type
    )


@login_required
def version_diff(request: HttpRequest, integration_pk: int) -> HttpResponse:
    integration = get_visible_or_404(request.user, _INTEGRATIONS, pk=integration_pk)
    specification = _specification(integration)
    if specification is None:
        raise Http404
    versions = specification.versions.all()
    data = request.GET if "from" in request.GET or "to" in request.GET else None
    if data is None and len(versions) >= 2:
        data = {"from": versions[1].pk, "to": versions[0].pk}
    form = DiffForm(data, versions=versions)
    diff = None
    if data is not None and form.is_valid():
        diff = diff_versions(form.cleaned_data["from"], form.cleaned_data["to"])
    return render(
        request,
        "specs/version_diff.html",
        {"integration": integration, "form": form, "diff": diff, "versions": versions},
    )


@login_required
def version_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_visible_or_404(request.user, _VERSIONS, pk=pk)
    response = HttpResponse(render_version_pdf(version), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{version_pdf_filename(version)}"'
    return response
