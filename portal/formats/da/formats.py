# Short dates name the month ("6. dec. 2026"): a date with only numbers is read the wrong way
# round by anyone used to another order, and the portal's readers meet both.
DATE_FORMAT = "j. F Y"
DATETIME_FORMAT = "j. F Y H:i"
SHORT_DATE_FORMAT = "j. N Y"
SHORT_DATETIME_FORMAT = "j. N Y H:i"
TIME_FORMAT = "H:i"
YEAR_MONTH_FORMAT = "F Y"
MONTH_DAY_FORMAT = "j. F"
FIRST_DAY_OF_WEEK = 1  # Monday

# The first of each list is how a form shows a value; ISO 8601 is always accepted as well.
DATE_INPUT_FORMATS = [
    "%d.%m.%Y",  # 06.12.2026
    "%d-%m-%Y",  # 06-12-2026
    "%d/%m/%Y",  # 06/12/2026
]
DATETIME_INPUT_FORMATS = [
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S.%f",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H.%M",  # 06.12.2026 13.03, as Danish writes the time
    "%d-%m-%Y %H:%M",
    "%d/%m/%Y %H:%M",
]
TIME_INPUT_FORMATS = [
    "%H:%M:%S",
    "%H:%M:%S.%f",
    "%H:%M",
    "%H.%M",
]
