"""Every refusal as JSON with a stable `code`, so a program can tell a 401 for an expired token
from one for a revoked token, and a blocked route from a reused Idempotency-Key."""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI

from handoff.tokens import TokenRefused


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra

    def body(self) -> dict:
        return {"code": self.code, "detail": self.detail, **self.extra}


class Invalid(ApiError):
    """A 422 shaped like django-ninja's own validation errors."""

    def __init__(self, location: tuple[str, ...], message: str):
        super().__init__(422, "invalid", message)
        self.location = location

    def body(self) -> dict:
        return {"detail": [{"type": "value_error", "loc": list(self.location), "msg": self.detail}]}


def only_query(*names: str) -> Callable[[Callable], Callable]:
    """Refuse query parameters the operation does not take: a misspelt filter (`?stat=failed`)
    would otherwise be ignored, and the answer would hold everything. Each takes one value: one
    given twice (`?q=a&q=b`) is refused too, not read as whichever came last."""
    allowed = frozenset(names)

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            unknown = sorted(set(request.GET) - allowed)
            if unknown:
                raise Invalid(("query", unknown[0]), f"Unknown query parameter {unknown[0]!r}.")
            repeated = sorted(name for name, values in request.GET.lists() if len(values) > 1)
            if repeated:
                raise Invalid(
                    ("query", repeated[0]), f"Query parameter {repeated[0]!r} is given twice."
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def token_refused(error: TokenRefused) -> HttpResponse:
    response = JsonResponse({"code": error.code, "detail": error.message}, status=401)
    response["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{error}"'
    return response


def install(api: NinjaAPI) -> None:
    @api.exception_handler(ApiError)
    def api_error(request: HttpRequest, error: ApiError) -> HttpResponse:
        return api.create_response(request, error.body(), status=error.status)

    @api.exception_handler(TokenRefused)
    def token_refused_handler(request: HttpRequest, error: TokenRefused) -> HttpResponse:
        return token_refused(error)

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, error: Http404) -> HttpResponse:
        # The same answer for a record that does not exist and one the token may not see.
        return api.create_response(
            request, {"code": "not_found", "detail": "Not found."}, status=404
        )

    @api.exception_handler(PermissionDenied)
    def forbidden(request: HttpRequest, error: PermissionDenied) -> HttpResponse:
        detail = str(error) or "The token may not do this."
        return api.create_response(request, {"code": "forbidden", "detail": detail}, status=403)
