import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation


class ChosenLanguageMiddleware:
    """Danish unless the user has chosen another language with the language switcher.

    Django's LocaleMiddleware would follow the browser's Accept-Language, and many Danish
    officials run English browsers; the portal's default is Danish, as the issue of every form.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.supported = {code for code, _ in settings.LANGUAGES}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        language = chosen if chosen in self.supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        return response


class IdleSessionMiddleware:
    """Moves a logged-in session's end forward while its user makes requests.

    Django fixes a session's expiry when it is saved; saving it on every request would write the
    session row on every page. Here it is saved at most once a minute, which keeps the idle
    timeout (SESSION_IDLE_MINUTES) to within that minute.
    """

    REFRESH_SECONDS = 60
    KEY = "_last_seen"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Only a request that read its session (every page does, to know its user): a health
        # check while the database is down must not be made to read it.
        if request.session.accessed and request.user.is_authenticated:
            now = int(time.time())
            if now - request.session.get(self.KEY, 0) >= self.REFRESH_SECONDS:
                request.session[self.KEY] = now  # marks it modified: saved with a new expiry
        return response

    @classmethod
    def seen_at_login(cls, sender, request, user, **kwargs) -> None:
        """The login saves the session anyway: the first page after it need not save it again."""
        if request is not None and hasattr(request, "session"):
            request.session[cls.KEY] = int(time.time())
