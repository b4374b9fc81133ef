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


def load_reference_organisations(organisation_model) -> None:
    """Create or refresh the 98 municipalities and KOMBIT; safe to run any number of times.

    Takes the model as an argument so the data migration can pass its historical model.
    """
    for municipality in read_municipalities():
        organisation_model.objects.update_or_create(
            municipality_code=municipality.code,
            defaults={"kind": "municipality", "name": municipality.name, "cvr": municipality.cvr},
        )
    organisation_model.objects.update_or_create(
        kind="kombit", defaults={"name": KOMBIT_NAME, "cvr": KOMBIT_CVR}
    )
