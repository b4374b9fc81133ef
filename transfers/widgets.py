"""A drop-down for the transfer list's filters that may offer hundreds of options."""

from html import escape

from django import forms
from django.utils.safestring import mark_safe


class ManyOptionsSelect(forms.Select):
    """A drop-down that may hold hundreds of options (a superuser's IT systems). Select's
    templates take a dict and an include per option, which took seconds when the list offered
    5,000 routes; even a loop of its own in a template cost a superuser's list page a fifth of
    its time for 500 options, and `format_html_join` still a fifth of what was left. The
    options are written here, each value and label escaped by `html.escape` (as Django's
    `escape` does, without its checks for lazy and safe strings), in one join."""

    template_name = "transfers/widgets/many_options_select.html"

    def optgroups(self, name, value, attrs=None) -> list:
        return []  # the template shows `widget.options_html` instead

    def get_context(self, name, value, attrs) -> dict:
        context = super().get_context(name, value, attrs)
        chosen, options = set(context["widget"]["value"]), []
        for option_value, label in self.choices:
            text = "" if option_value is None else str(option_value)
            selected = text in chosen
            if selected:
                chosen = set()  # as Select has it: only the first match is selected
            options.append(
                f'\n  <option value="{escape(text)}"{" selected" if selected else ""}>'
                f"{escape(str(label))}</option>"
            )
        context["widget"]["options_html"] = mark_safe("".join(options))  # noqa: S308 - escaped
        return context
