"""GDPR declaration PDF: render time of a large submitted declaration, median of 20.

    .venv/bin/python -m bench.pdf [--renders 20] [--no-save]

Sets up a throwaway SQLite database with the demo data, submits a new version of the demo
declaration through the real workflow, naming all 98 municipalities as data controllers and
with long answers (the largest declaration a vendor with every municipality as customer would
send), then renders its PDF `--renders` times after one warm-up render (fonts, templates and
WeasyPrint's own imports are loaded once per worker process, as they are in production).
"""

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import migrated
from bench.common import ROOT, Row, machine, now, save

FLOOR_SECONDS = 1.5


def _paragraphs(topic: str, count: int) -> str:
    sentence = (
        "Kommunens sagsbehandlere modtager oplysningerne om borgerens forløb, og behovet "
        "vurderes løbende på grundlag af dem."
    )
    return "\n\n".join(f"{topic} {number}. " + " ".join([sentence] * 5) for number in range(count))


def _setup(directory: Path) -> None:
    migrated.sqlite_copy(directory / "bench.sqlite3")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=f"sqlite:///{directory / 'bench.sqlite3'}",
        PORTAL_DATA_DIR=str(directory / "data"),
        DEBUG="true",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("seed_demo", stdout=io.StringIO())


def _large_declaration():
    from django.contrib.auth import get_user_model

    from gdpr import workflow
    from gdpr.models import InfRef
    from portal.accounts.models import Organisation

    infref = InfRef.objects.filter(declarations__isnull=False).order_by("pk").first()
    vendor_user = get_user_model().objects.get(memberships__organisation=infref.it_system.vendor)
    draft = workflow.open_draft(infref, vendor_user)
    draft.purpose = _paragraphs("Formål", 5)
    draft.personal_data_categories = _paragraphs("Oplysningstyper", 3)
    draft.legal_basis_detail = _paragraphs("Lovgrundlag", 2)
    draft.retention = _paragraphs("Opbevaring", 2)
    draft.deletion = _paragraphs("Sletning", 2)
    draft.save()
    draft.controllers.set(Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY))
    return workflow.submit_declaration(draft, vendor_user)


def benchmark(renders: int) -> dict:
    with tempfile.TemporaryDirectory() as temp:
        _setup(Path(temp))
        from pypdf import PdfReader

        from gdpr.pdf import render_declaration_pdf

        declaration = _large_declaration()
        warm_up = render_declaration_pdf(declaration)
        seconds = []
        for _ in range(renders):
            started = time.perf_counter()
            render_declaration_pdf(declaration)
            seconds.append(time.perf_counter() - started)
        pages = len(PdfReader(io.BytesIO(warm_up)).pages)
        controllers = declaration.controllers.count()
    median = statistics.median(seconds)
    report = {
        "date": now(),
        "machine": machine(),
        "settings": {"renders": renders, "pages": pages, "controllers": controllers},
        "seconds": [round(value, 4) for value in seconds],
        "summary": {
            "median_s": round(median, 3),
            "worst_s": round(max(seconds), 3),
            "floor_s": FLOOR_SECONDS,
            "holds": median < FLOOR_SECONDS,
        },
    }
    report["machine"]["load_average_after"] = os.getloadavg()
    report["rows"] = [
        Row(
            "pdf",
            f"declaration PDF ({pages} pages, {controllers} controllers), median of {renders}",
            median,
            "s",
            f"< {FLOOR_SECONDS}",
            median < FLOOR_SECONDS,
        ).as_dict(),
        Row("pdf", f"declaration PDF, worst of {renders}", max(seconds), "s").as_dict(),
    ]
    return report


def run(quick: bool = False) -> dict:
    return benchmark(5 if quick else 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    arguments = parser.parse_args(argv)
    report = benchmark(arguments.renders)
    summary, settings = report["summary"], report["settings"]
    print(
        f"{settings['pages']} pages, {settings['controllers']} controllers: median "
        f"{summary['median_s']:.3f} s, worst {summary['worst_s']:.3f} s over "
        f"{settings['renders']} renders (floor: median < {FLOOR_SECONDS} s) -> "
        + ("HOLDS" if summary["holds"] else "MISSED")
    )
    if not arguments.no_save:
        print(f"wrote {save('pdf', report).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
