"""The 98 Danish municipalities and KOMBIT, shipped as data (see data/municipalities.csv)."""

import csv
from pathlib import Path
from typing import NamedTuple

MUNICIPALITIES_CSV = Path(__file__).parent / "data" / "municipalities.csv"

KOMBIT_NAME = "KOMBIT A/S"
KOMBIT_CVR = "19435075"


class Municipality(NamedTuple):
    code: str
    name: str
    cvr: str


def read_municipalities() -> list[Municipality]:
    with MUNICIPALITIES_CSV.open(encoding="utf-8", newline="") as handle:
        return [
            Municipality(row["municipality_code"], row["name"], row["cvr"])
            for row in csv.DictReader(handle)
        ]
