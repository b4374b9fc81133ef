import hashlib

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from portal.outbox.mail import queue_mail, validate_recipients, validate_subject
from portal.outbox.models import MailAttachment, OutgoingMail
from portal.outbox.tasks import resend


class MailAttachmentInline(admin.TabularInline):
    model = MailAttachment
    fields = ["filename", "content_type", "sha256"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class OutgoingMailAddForm(forms.ModelForm):
    class Meta:
        model = OutgoingMail
        fields = ["to", "subject", "body", "organisation"]

    def clean_to(self):
        return validate_recipients(self.cleaned_data["to"] or [])

    def clean_subject(self):
        return validate_subject(self.cleaned_data["subject"])


@admin.register(OutgoingMail)
class OutgoingMailAdmin(admin.ModelAdmin):
    list_display = ["subject", "state", "attempts", "created", "sent_at"]
    list_filter = ["state"]
    search_fields = ["subject", "message_id"]
    date_hierarchy = "created"
    inlines = [MailAttachmentInline]
    actions = ["resend_failed"]

    def get_inlines(self, request, obj):
        # A new mail's files come from the code that queues it, not from this form.
        return self.inlines if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = OutgoingMailAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return OutgoingMailAddForm._meta.fields
        return super().get_fields(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        # A mail is a record of what was sent: once written, nothing in it changes by hand.
        return False

    def save_model(self, request, obj, form, change) -> None:
        # Added through queue_mail so an admin's mail gets its Message-ID and its task like any.
        queued = queue_mail(
            to=obj.to,
            subject=obj.subject,
            body=obj.body,
            organisation=obj.organisation,
            created_by=request.user,
        )
        obj.pk = queued.pk
        obj.message_id = queued.message_id
        obj._state.adding = False

    @admin.action(description=_("Send the selected failed mails again"))
    def resend_failed(self, request, queryset) -> None:
        count = sum(resend(mail) for mail in queryset.filter(state=OutgoingMail.State.FAILED))
        self.message_user(
            request,
            ngettext(
                "%(count)d mail is queued to be sent again.",
                "%(count)d mails are queued to be sent again.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )


class MailAttachmentAddForm(forms.ModelForm):
    file = forms.FileField(label=_("file"))

    class Meta:
        model = MailAttachment
        fields = ["mail"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["mail"].queryset = OutgoingMail.objects.filter(state=OutgoingMail.State.QUEUED)
        self.fields["mail"].help_text = _("Only a mail that is still queued can be given a file.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if len(upload.name) > MailAttachment._meta.get_field("filename").max_length:
            raise ValidationError(_("The file name is too long."))
        return upload


@admin.register(MailAttachment)
class MailAttachmentAdmin(admin.ModelAdmin):
    list_display = ["filename", "mail", "content_type", "sha256"]
    search_fields = ["filename", "sha256", "mail__subject", "mail__message_id"]
    list_select_related = ["mail"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MailAttachmentAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["mail", "file"]
        return ["mail", "filename", "content_type", "sha256"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        upload = form.cleaned_data["file"]
        content = upload.read()
        with transaction.atomic():
            # Locking the queued row holds off the worker's claim, so the file is either part
            # of every attempt or refused; a mail already sending or sent is never altered.
            locked = OutgoingMail.objects.select_for_update().filter(
                pk=obj.mail_id, state=OutgoingMail.State.QUEUED
            )
            if not locked.exists():
                # The form offered only queued mails; this one was claimed since.
                raise RuntimeError("the mail is no longer queued")
            obj.filename = upload.name
            obj.content_type = upload.content_type or "application/octet-stream"
            obj.content = content
            obj.sha256 = hashlib.sha256(content).hexdigest()
            obj.save()
