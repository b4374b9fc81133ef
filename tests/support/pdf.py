"""PDFs for the tests, made by a PDF library so that they open as the portal requires."""

import io

from pypdf import PdfWriter


def pdf(pages: int = 1, *, password: str = "") -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)  # A4 in points
    if password:
        writer.encrypt(password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


ONE_PAGE = pdf()
