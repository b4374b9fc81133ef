"""`{% row_url %}`: the same paths `{% url %}` gives, reversed once per render."""

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.urls import NoReverseMatch, reverse


def render(source: str, **context) -> str:
    return Template("{% load row_urls %}" + source).render(Context(context))


@pytest.mark.parametrize(
    "view",
    ["transfers:detail", "transfers:received_download", "gdpr:declaration", "specs:version"],
)
def test_each_row_gets_the_path_reverse_gives(view):
    pks = [1, 22, 333, 918273645546372818, 10**20]
    rendered = render("{% for pk in pks %}{% row_url view pk %}|{% endfor %}", view=view, pks=pks)
    assert rendered.split("|")[:-1] == [reverse(view, args=[pk]) for pk in pks]


def test_two_views_in_one_render_keep_their_own_paths():
    rendered = render(
        "{% row_url 'transfers:detail' 5 %} {% row_url 'onboarding:detail' 5 %} "
        "{% row_url 'transfers:detail' 6 %}"
    )
    assert rendered.split() == [
        reverse("transfers:detail", args=[5]),
        reverse("onboarding:detail", args=[5]),
        reverse("transfers:detail", args=[6]),
    ]


def test_a_key_that_is_not_a_number_is_an_error_not_a_path():
    with pytest.raises(ValueError):
        render("{% row_url 'transfers:detail' pk %}", pk="../admin")


def test_an_unknown_view_is_the_same_error_as_url_gives():
    with pytest.raises(NoReverseMatch):
        render("{% row_url 'transfers:nowhere' 1 %}")


def test_the_tag_needs_a_view_and_a_key():
    with pytest.raises(TemplateSyntaxError):
        render("{% row_url %}")
