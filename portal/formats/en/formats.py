# English as a Danish public-sector reader expects it: day before month and a 24-hour clock,
# never Django's US defaults ("12/06/2026 1:03 p.m." for 6 December).
DATE_FORMAT = "j F Y"  # 6 December 2026
DATETIME_FORMAT = "j F Y H:i"
SHORT_DATE_FORMAT = "j M Y"  # 6 Dec 2026
SHORT_DATETIME_FORMAT = "j M Y H:i"
TIME_FORMAT = "H:i"
YEAR_MONTH_FORMAT = "F Y"
MONTH_DAY_FORMAT = "j F"
FIRST_DAY_OF_WEEK = 1  # Monday, as in Denmark

# Day first here too: Django's English list would read 06/12/2026 as 12 June. The first of each
# list is how a form shows a value; ISO 8601 is always accepted as well.
DATE_INPUT_FORMATS = [
    "%d/%m/%Y",  # 06/12/2026
    "%d-%m-%Y",  # 06-12-2026
    "%d.%m.%Y",  # 06.12.2026
    "%d %b %Y",  # 6 Dec 2026
    "%d %B %Y",  # 6 December 2026
]
DATETIME_INPUT_FORMATS = [
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S.%f",
    "%d/%m/%Y %H:%M",
    "%d-%m-%Y %H:%M",
    "%d.%m.%Y %H:%M",
    "%d %b %Y %H:%M",
]
TIME_INPUT_FORMATS = [
    "%H:%M:%S",
    "%H:%M:%S.%f",
    "%H:%M",
]
