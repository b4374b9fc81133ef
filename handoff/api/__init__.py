"""The portal's REST API, version 1, at /api/v1/ (OpenAPI at /api/v1/openapi.json, docs at
/api/v1/docs). Every call carries a per-IT-system token; see docs/api.md. The description and
its docs page are for the portal's users and the IT systems it serves: a logged-in user or a
token, unless API_DOCS_PUBLIC opens them."""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from ninja import NinjaAPI

from handoff.api import errors, received, sends
from handoff.api.auth import TokenAuth
from handoff.tokens import TokenRefused


def _language(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Messages in the language the client asks for (Accept-Language), Danish by default: a
    program has no language switcher to click."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        language = translation.get_language_from_request(request)
        with translation.override(language):
            response = view(request, *args, **kwargs)
        response["Content-Language"] = language
        return response

    return wrapper


def _users_and_tokens(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A person is sent to log in; a program without a usable token gets the API's own 401."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if settings.API_DOCS_PUBLIC or request.user.is_authenticated:
            return view(request, *args, **kwargs)
        a_page = request.resolver_match.url_name == "openapi-view"
        if a_page and "Authorization" not in request.headers:
            return redirect_to_login(request.get_full_path())
        try:
            TokenAuth()(request)
        except TokenRefused as refused:
            return errors.token_refused(refused)
        return view(request, *args, **kwargs)

    return wrapper


api = NinjaAPI(
    title="FDD portal API",
    version="1",
    description="Queue files on routes, follow transfers, and take received files, "
    "without a person. Authenticate with `Authorization: Bearer <token>`, a token made on "
    "the IT system's page in the portal.",
    auth=TokenAuth(),
    urls_namespace="api-v1",
    docs_decorator=_users_and_tokens,
)
errors.install(api)
api.add_decorator(_language, mode="view")
api.add_router("", sends.router)
api.add_router("", received.router)
