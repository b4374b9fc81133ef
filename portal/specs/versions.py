"""Creating specification versions and adding documents to them: each in one transaction.

The rules are checked again here, under a lock on the specification, so two vendors' staff
saving at once cannot both make version 1.1, nor slip an incompatible minor version past them.
Files are written only after their content was checked (`documents.inspect_document`); if the
transaction fails after some were written, they are removed again.
"""

from collections.abc import Iterable, Mapping

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from portal.core.text import file_label
from portal.onboarding.models import Integration
from portal.onboarding.rules import (
    data_specification_changed,
    data_specification_documents_changed,
)
from portal.specs.compatibility import validate_new_version
from portal.specs.diff import STRUCTURE_FIELDS, field_specs
from portal.specs.documents import Inspection
from portal.specs.models import (
    DataSpecification,
    SpecificationDocument,
    SpecificationField,
    SpecificationVersion,
)

Upload = tuple[UploadedFile, Inspection]


def create_version(
    integration: Integration,
    *,
    major: int,
    minor: int,
    structure: Mapping,
    fields: Iterable,
    user,
    documents: Iterable[Upload] = (),
) -> SpecificationVersion:
    """A new version with its fields and documents.

    Every version after the first asks for a new GDPR declaration
    (`onboarding.rules.data_specification_changed`): by a deadline after a minor version, at
    once after a major one. The first has nothing declared before it.
    Raises ValidationError if the number or the content breaks the rules.
    """
    fields = field_specs(fields)
    structure = {name: structure[name] for name in STRUCTURE_FIELDS if name in structure}
    written: list[SpecificationDocument] = []
    try:
        with transaction.atomic():
            specification, _created = DataSpecification.objects.get_or_create(
                integration=integration
            )
            specification = DataSpecification.objects.select_for_update().get(pk=specification.pk)
            previous = validate_new_version(
                specification, major, minor, fields, structure=structure
            )
            version = SpecificationVersion(
                specification=specification, major=major, minor=minor, created_by=user, **structure
            )
            version.full_clean()
            version.save()
            SpecificationField.objects.bulk_create(
                SpecificationField(
                    version=version,
                    position=position,
                    name=field.name,
                    type=field.type,
                    required=field.required,
                    description=field.description,
                )
                for position, field in enumerate(fields, 1)
            )
            _store(version, documents, user, written)
            if previous is not None:
                data_specification_changed(
                    integration, version.label, backward_compatible=major == previous.major
                )
    except BaseException:
        _remove(written)
        raise
    return version


def add_documents(
    version: SpecificationVersion, documents: Iterable[Upload], user
) -> list[SpecificationDocument]:
    written: list[SpecificationDocument] = []
    try:
        with transaction.atomic():
            _store(version, documents, user, written)
            if written:
                data_specification_documents_changed(
                    version.specification.integration, version.label
                )
    except BaseException:
        _remove(written)
        raise
    return written


def _store(
    version: SpecificationVersion,
    documents: Iterable[Upload],
    user,
    written: list[SpecificationDocument],
) -> None:
    for upload, inspection in documents:
        name = file_label(upload.name)
        document = SpecificationDocument(
            version=version,
            original_name=name,
            kind=inspection.kind,
            size=inspection.size,
            sha256=inspection.sha256,
            uploaded_by=user,
        )
        upload.seek(0)
        # The storage copies the upload to disk chunk by chunk.
        document.file.save(name, upload, save=False)
        written.append(document)
        document.save()


def _remove(documents: list[SpecificationDocument]) -> None:
    for document in documents:
        if document.file.name:
            document.file.storage.delete(document.file.name)
