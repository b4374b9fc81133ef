"""Every URL pattern of the portal, found by walking the resolver, with a path that reaches it.

The generated tests (CSRF, two-step login, the isolation matrix) walk this list rather than a
hand-kept one, so a view added tomorrow is checked tomorrow.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, resolve

_CONVERTER = re.compile(r"<(?:(?P<kind>\w+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")


@dataclass(frozen=True)
class Pattern:
    key: str  # "namespace:name", or the route itself for an unnamed pattern
    route: str  # the whole route from the root, as Django's ResolverMatch.route gives it
    pattern: URLPattern

    @property
    def is_admin(self) -> bool:
        return self.key.startswith("admin:") or self.route.startswith("admin/")

    def path(self, values: Mapping[str, object] | None = None) -> str:
        """A path that resolves to this pattern, with `values` for its arguments (else "1")."""
        values = values or {}

        def converter(match: re.Match) -> str:
            return str(values.get(match["name"], "1"))

        def group(match: re.Match) -> str:
            if match["name"] in values:
                return str(values[match["name"]])
            # An alternation of plain words (the admin's app list): the first one.
            if re.fullmatch(r"[\w|]+", match["body"]):
                return match["body"].split("|")[0]
            return "anything"

        # Regex groups first: their "(?P<name>" looks like a converter too.
        path = _CONVERTER.sub(converter, _REGEX_GROUP.sub(group, self.route))
        path = "/" + path.replace("^", "").replace("$", "")
        found = resolve(path)
        if found.route.replace("^", "") != self.route.replace("^", ""):
            raise AssertionError(f"{path} reaches {found.route!r}, not {self.route!r}")
        return path

    @property
    def arguments(self) -> list[str]:
        groups = [m["name"] for m in _REGEX_GROUP.finditer(self.route)]
        return groups + [m["name"] for m in _CONVERTER.finditer(_REGEX_GROUP.sub("", self.route))]


def _walk(resolver: URLResolver, prefix: str, namespace: str) -> Iterator[Pattern]:
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry, route, inner)
        elif isinstance(entry, URLPattern):
            key = namespace + entry.name if entry.name else route
            yield Pattern(key, route, entry)


def all_patterns() -> list[Pattern]:
    """Every pattern the root URLconf reaches, the admin's included, in a stable order."""
    return sorted(_walk(get_resolver(), "", ""), key=lambda p: (p.key, p.route))
