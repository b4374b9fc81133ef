"""The logins a fill makes: the pages bench signs in as them, by these names."""

PREFIX = "scale-"
SUPERUSER = f"{PREFIX}admin"
OPERATOR = f"{PREFIX}kombit"


def vendor_username(index: int, number: int = 1) -> str:
    """A login of the staff of vendor number `index` (from 1): two per vendor."""
    return f"{PREFIX}v{index:02d}-{number}"


def architect_username(municipality_code: str) -> str:
    return f"{PREFIX}m{municipality_code}"
