"""Filters for the plain-text mails: every value a person typed is quoted (portal.core.text)."""

from django import template

from portal.core import text

register = template.Library()
register.filter("quoted", text.quoted)
register.filter("quoted_block", text.quoted_block)
# Names the portal's administrators keep (organisations, municipalities): shown as they are, on
# their line.
register.filter("visible", text.visible)
