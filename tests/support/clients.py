"""The test client as the page tests use it: reading English, logged in, asking as htmx does,
and the messages an answer leaves for the next page.

Assertions read English text, so the Danish catalogue may change freely.
"""

from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

# The header htmx sends with the requests it makes: a page answers them with a fragment.
HTMX = {"HTTP_HX_REQUEST": "true"}


def english(client: Client) -> Client:
    client.cookies["django_language"] = "en"
    return client


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return english(client)


def said(response) -> list[str]:
    """The messages the answer leaves for the next page (and takes them, so none is read twice
    by a later answer of the same client)."""
    storage = get_messages(response.wsgi_request)
    shown = [str(message) for message in storage]
    response.client.get(reverse("dashboard"))  # the next page shows them, and they are gone
    return shown
