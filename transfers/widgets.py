"""A drop-down for the transfer list's filters that may offer hundreds of options."""

from django import forms


class ManyOptionsSelect(forms.Select):
    """A drop-down that may hold hundreds of options (a superuser's IT systems), drawn in one
    loop of its own template: Select's templates take a dict and an include per option, which
    took seconds when the list offered 5,000 routes."""

    template_name = "transfers/widgets/many_options_select.html"

    def optgroups(self, name, value, attrs=None) -> list:
        return []  # the template draws `widget.options` instead

    def get_context(self, name, value, attrs) -> dict:
        context = super().get_context(name, value, attrs)
        chosen, options = set(context["widget"]["value"]), []
        for option_value, label in self.choices:
            text = "" if option_value is None else str(option_value)
            selected = text in chosen
            if selected:
                chosen = set()  # as Select has it: only the first match is selected
            options.append((text, label, selected))
        context["widget"]["options"] = options
        return context
