"""Administration of specifications: read mostly, since versions are records.

Versions are made in the portal, where the numbering and compatibility rules run and the GDPR
declaration is told; documents are uploaded there, where their content is checked.
"""

from django.contrib import admin

from portal.specs.models import (
    DataSpecification,
    SpecificationDocument,
    SpecificationField,
    SpecificationVersion,
)


class VersionInline(admin.TabularInline):
    model = SpecificationVersion
    fields = ["major", "minor", "format", "publish_to_catalogue", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DataSpecification)
class DataSpecificationAdmin(admin.ModelAdmin):
    list_display = ["integration", "created_at"]
    search_fields = ["integration__name"]
    readonly_fields = ["integration", "created_at"]
    inlines = [VersionInline]

    def has_add_permission(self, request) -> bool:
        return False


class FieldInline(admin.TabularInline):
    model = SpecificationField
    fields = ["position", "name", "type", "required", "description"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class DocumentInline(admin.TabularInline):
    model = SpecificationDocument
    fields = ["original_name", "kind", "size", "sha256", "uploaded_by", "uploaded_at"]
    readonly_fields = fields
    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SpecificationVersion)
class SpecificationVersionAdmin(admin.ModelAdmin):
    list_display = ["specification", "label", "format", "publish_to_catalogue", "created_at"]
    list_filter = ["format", "publish_to_catalogue"]
    search_fields = ["specification__integration__name"]
    readonly_fields = [
        "specification",
        "major",
        "minor",
        "format",
        "encoding",
        "delimiter",
        "frequency",
        "created_by",
        "created_at",
    ]
    inlines = [FieldInline, DocumentInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # A version is a record the GDPR declaration and the parties refer to.
        return False


@admin.register(SpecificationField)
class SpecificationFieldAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "position", "type", "required"]
    list_filter = ["type", "required"]
    search_fields = ["name", "version__specification__integration__name"]
    readonly_fields = ["version", "position", "name", "type", "required"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SpecificationDocument)
class SpecificationDocumentAdmin(admin.ModelAdmin):
    list_display = ["original_name", "version", "kind", "size", "uploaded_at"]
    list_filter = ["kind"]
    search_fields = ["original_name", "sha256", "version__specification__integration__name"]
    readonly_fields = [
        "version",
        "file",
        "original_name",
        "kind",
        "size",
        "sha256",
        "uploaded_by",
        "uploaded_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False
