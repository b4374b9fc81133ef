"""A portal filled with a year of traffic at scale, for measuring the pages (bench/pages.py).

    .venv/bin/python -m bench.scale [--transfers 1000000] [--vendors 50] [--routes 5000]
                                    [--days 365] [--seed N] [--clear]

Vendors with IT systems, SFTP accounts, InfRefs, GDPR declarations, data specifications and
integrations with their onboarding tasks, routes over the 98 municipalities (loaded by a
migration), then the transfers: queued over `--days` days up to now, mostly delivered, some failed
(by KOMBIT's receipt or after five tries), a few cancelled, the newest still queued, sending or
sent, some waiting to try again; with their triggers and receipts. A share of the delivered files
is received by the other vendor's account, every failed transfer raised an alert, and the files
sent by hand left an audit event. A fixed seed makes two runs alike.

The modules, one job each: `world` plans the vendors and everything up to the routes through the
ORM; `traffic` makes the transfers and what follows them, row by row, while `rows` writes them
in the database's own text forms and `database` readies the tables for a bulk load and settles
them after; `documents` holds the XML and the texts a transfer carries, made by the portal's
own code; `fill` puts these in order; `logins` names the users a fill makes.
"""


class Refused(Exception):
    """The fill was asked for something it cannot make, or would overwrite a portal."""
