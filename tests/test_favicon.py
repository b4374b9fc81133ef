"""The portal's icon: every page links it, and /favicon.ico, which browsers and feed readers ask
for without reading a page, leads to it instead of answering 404 on every first visit."""

from django.urls import reverse


def test_every_page_links_the_icon_and_the_usual_address_leads_to_it(client, db):
    page = client.get(reverse("login")).content.decode()
    assert 'rel="icon"' in page

    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"] in page
    assert response["Location"].endswith(".svg")
