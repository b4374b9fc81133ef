"""Dates and times as the portal's readers write them, per language (settings.FORMAT_MODULE_PATH).

Django looks here before its own locale formats, and falls back to them for anything not set.
"""
