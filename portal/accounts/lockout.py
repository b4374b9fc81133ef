"""Login throttling with django-axes: whose address counts, and what a locked-out person sees."""

import math

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import ngettext

STATUS = 429  # Too Many Requests


def client_ip(request: HttpRequest) -> str | None:
    """The address failed logins are counted against.

    Behind the TLS proxy every request comes from the proxy, so its own address would lock out
    everyone at once; the proxy appends the address it saw to X-Forwarded-For, and only that
    last entry is trusted (the ones before it are whatever the client sent).
    """
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR")


def lockout_message(request: HttpRequest | None = None) -> str:
    minutes = max(1, math.ceil(get_cool_off(request).total_seconds() / 60))
    return ngettext(
        "Too many failed logins with this user name. Logging in is blocked for %(minutes)d "
        "minute; wait, then try again.",
        "Too many failed logins with this user name. Logging in is blocked for %(minutes)d "
        "minutes; wait, then try again.",
        minutes,
    ) % {"minutes": minutes}


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    """The login page again, saying why, without judging the password that was typed."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    return render(
        request,
        "registration/login.html",
        {
            "form": form,
            "locked_out": lockout_message(request),
            "next": request.POST.get("next") or request.GET.get("next", ""),
        },
        status=STATUS,
    )
