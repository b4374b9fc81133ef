"""Every request gets an id, written on each log line while it runs (portal.core.logs), handed
to the tasks it queues (portal.core.task_context) and returned in the X-Request-ID header: the
way from a user's error page or a load balancer's log line to everything the portal did for it.
"""

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from portal.core import logs

HEADER = "X-Request-ID"
# A proxy's or client's own id is kept when it is one word of printable ASCII of a sane length;
# anything else (a line break, kilobytes, other alphabets) would forge or bloat log lines.
_SANE = re.compile(r"[\x21-\x7e]{1,200}")


def request_id_for(request: HttpRequest) -> str:
    offered = request.headers.get(HEADER)
    if offered is not None and _SANE.fullmatch(offered):
        return offered
    return logs.new_request_id()


class RequestIdMiddleware:
    """First in MIDDLEWARE, so the lines of every other middleware, and of an error, carry it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Also on the request: Django logs a 4xx or 5xx response after this has returned, and
        # the log filter finds the id there.
        request.request_id = request_id_for(request)
        with logs.request_context(request.request_id, request):
            response = self.get_response(request)
        response[HEADER] = request.request_id
        return response
