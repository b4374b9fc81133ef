"""`Authorization: Bearer <token>`: a missing or malformed header is refused as clearly as a
revoked token, instead of django-ninja's bare "Unauthorized"."""

from django.http import HttpRequest
from ninja.security import HttpBearer

from handoff import tokens


class TokenAuth(HttpBearer):
    def __call__(self, request: HttpRequest) -> tokens.TokenPrincipal:
        header = request.headers.get(self.header, "")
        if not header:
            raise tokens.TokenRefused(
                "token_missing", "Send the API token as 'Authorization: Bearer <token>'."
            )
        scheme, _space, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise tokens.TokenRefused(
                "token_malformed", "The Authorization header must be 'Bearer <token>'."
            )
        return self.authenticate(request, value.strip())

    def authenticate(self, request: HttpRequest, token: str) -> tokens.TokenPrincipal:
        return tokens.TokenPrincipal(tokens.check(token))
