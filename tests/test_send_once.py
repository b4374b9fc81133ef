"""A send is queued once (issue 16, item 5): the send form carries a one-time token, and the same
form posted again (Back and send, a double click, two posts at once) queues no second file."""

import re
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from portal.audit.models import AuditEvent
from tests.conftest import PASSWORD, make_user
from tests.support.browser import chromium
from tests.support.handoff_setup import ready_fixture  # noqa: F401
from transfers import send_once
from transfers.models import Transfer

DATA = b"kommunekode;cpr\r\n751;0101011234\r\n" * 100
TRANSFER_PAGE = re.compile(r"/transfers/\d+/$")


def outgoing() -> set[Path]:
    folder = Path(settings.TRANSFER_DATA_DIR) / "outgoing"
    return set(folder.iterdir()) if folder.exists() else set()


def english(client: Client) -> Client:
    client.cookies["django_language"] = "en"
    return client


def form_token(client: Client) -> str:
    response = client.get(reverse("transfers:send"))
    assert response.status_code == 200
    return response.context["form"]["form_token"].value()


def post(client: Client, route, token: str, *, with_file: bool = True):
    data = {"route": route.pk, "form_token": token}
    if with_file:
        data["data_file"] = SimpleUploadedFile("borgere.csv", DATA)
    return client.post(reverse("transfers:send"), data)


def sends_recorded() -> int:
    return AuditEvent.objects.filter(action=AuditEvent.Action.SEND).count()


def test_each_form_shown_carries_a_token_of_its_own_for_its_user(client_for, ready, staff_b):
    client = english(client_for(ready.staff))
    first, second = form_token(client), form_token(client)
    assert first != second
    key = send_once.key_of(ready.staff, first)
    assert send_once.token_for(ready.staff, key) == first
    assert send_once.key_of(staff_b, first) != key
    html = client.get(reverse("transfers:send")).content.decode()
    assert 'type="hidden" name="form_token"' in html
    assert "Form token" not in html


def test_the_same_form_posted_twice_queues_one_transfer_and_says_so(client_for, ready):
    client = english(client_for(ready.staff))
    before = outgoing()
    token = form_token(client)
    first = post(client, ready.route, token)
    transfer = Transfer.objects.get()
    assert first["Location"] == reverse("transfers:detail", args=[transfer.pk])
    assert transfer.form_token == send_once.key_of(ready.staff, token)

    again = post(client, ready.route, token)
    assert again["Location"] == first["Location"]
    assert "The file is already queued." in client.get(again["Location"]).content.decode()
    assert Transfer.objects.count() == 1
    assert outgoing() - before == {Path(transfer.payload)}
    assert sends_recorded() == 1


def test_back_and_send_without_the_file_still_finds_the_transfer(client_for, ready):
    client = client_for(ready.staff)
    token = form_token(client)
    first = post(client, ready.route, token)
    again = post(client, ready.route, token, with_file=False)
    assert again.status_code == 302
    assert again["Location"] == first["Location"]
    assert Transfer.objects.count() == 1


def test_a_new_form_sends_the_file_again(client_for, ready):
    client = client_for(ready.staff)
    post(client, ready.route, form_token(client))
    post(client, ready.route, form_token(client))
    assert Transfer.objects.count() == 2


def test_a_form_shown_again_after_an_error_keeps_its_key(client_for, ready):
    client = client_for(ready.staff)
    token = form_token(client)
    refused = post(client, ready.route, token, with_file=False)
    assert refused.status_code == 200
    assert refused.context["form"]["form_token"].value() == token
    post(client, ready.route, token)
    post(client, ready.route, token)
    assert Transfer.objects.count() == 1


def test_another_users_token_neither_shows_their_transfer_nor_blocks_a_send(
    client_for, ready, vendor_a
):
    token = form_token(client_for(ready.staff))
    theirs = post(client_for(ready.staff), ready.route, token)
    colleague = make_user("colleague-a", vendor_a)
    mine = post(client_for(colleague), ready.route, token)
    assert mine.status_code == 302
    assert mine["Location"] != theirs["Location"]
    assert Transfer.objects.count() == 2
    assert Transfer.objects.filter(created_by=colleague).get().form_token != (
        send_once.key_of(ready.staff, token)
    )


@pytest.mark.parametrize("token", ["", "not-signed", "1:forged:signature"])
def test_a_missing_or_forged_token_queues_as_a_new_send(client_for, ready, token):
    response = post(client_for(ready.staff), ready.route, token)
    assert response.status_code == 302
    assert Transfer.objects.count() == 1


def test_a_post_that_loses_the_race_leaves_no_file_and_finds_the_winner(
    client_for, ready, monkeypatch
):
    client = english(client_for(ready.staff))
    before = outgoing()
    token = form_token(client)
    first = post(client, ready.route, token)
    # The second post looked before the first had recorded its key, as two posts at once do:
    # the unique constraint is what stops it.
    looked = []
    real = send_once.queued_with

    def not_yet(user, key):
        looked.append(key)
        return None if len(looked) <= 2 else real(user, key)

    monkeypatch.setattr(send_once, "queued_with", not_yet)
    again = post(client, ready.route, token)
    assert len(looked) == 3
    assert again["Location"] == first["Location"]
    assert Transfer.objects.count() == 1
    assert outgoing() - before == {Path(Transfer.objects.get().payload)}
    assert sends_recorded() == 1


@pytest.mark.django_db(transaction=True)
def test_two_posts_at_the_same_moment_queue_one_transfer(ready, monkeypatch):
    before = outgoing()
    client = Client()
    client.force_login(ready.staff)
    token = form_token(client)
    # Each post waits, just before it writes, until the other has looked too.
    both_looked = threading.Barrier(2, timeout=30)
    looks = threading.local()
    real = send_once.queued_with

    def look(user, key):
        found = real(user, key)
        looks.count = getattr(looks, "count", 0) + 1
        if looks.count == 2:  # queue_once's look, the last before it writes
            both_looked.wait()
        return found

    monkeypatch.setattr(send_once, "queued_with", look)
    responses = [None, None]

    def send(index: int) -> None:
        try:
            racer = Client()
            racer.force_login(ready.staff)
            responses[index] = post(racer, ready.route, token)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    transfer = Transfer.objects.get()
    location = reverse("transfers:detail", args=[transfer.pk])
    assert [response["Location"] for response in responses] == [location, location]
    assert outgoing() - before == {Path(transfer.payload)}
    assert sends_recorded() == 1


def log_in_and_fill_the_form(browser, live_server, ready):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", ready.staff.username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/transfers/send/")
    page.select_option("#id_route", str(ready.route.pk))
    choose_the_file(page)
    return page


def choose_the_file(page) -> None:
    page.set_input_files(
        "#id_data_file", {"name": "borgere.csv", "mimeType": "text/csv", "buffer": DATA}
    )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_double_click_in_the_browser_queues_one_transfer(live_server, ready, monkeypatch):
    before = outgoing()
    # The server holds the first post until the second has arrived, as a slow one would; the
    # mouse clicks again meanwhile, and Chromium gives up the first post and sends the form again.
    first_arrived, second_arrived = threading.Event(), threading.Event()
    posts = set()
    real = send_once.queued_with

    def look(user, key):
        posts.add(threading.get_ident())
        if not first_arrived.is_set():
            first_arrived.set()
            second_arrived.wait(timeout=10)
        else:
            second_arrived.set()
        return real(user, key)

    monkeypatch.setattr(send_once, "queued_with", look)
    with chromium() as browser:
        page = log_in_and_fill_the_form(browser, live_server, ready)
        box = page.locator("main button[type=submit]").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.click(x, y)
        for _ in range(500):
            if first_arrived.is_set():
                break
            page.wait_for_timeout(20)
        page.mouse.click(x, y)
        # Not wait_for_url: it follows navigations, and the first one is aborted by the second
        # click, which is the point; the page's address is what counts.
        expect(page).to_have_url(TRANSFER_PAGE, timeout=15_000)
        url = page.url
    assert len(posts) == 2
    transfer = Transfer.objects.get()
    assert url.endswith(reverse("transfers:detail", args=[transfer.pk]))
    assert outgoing() - before == {Path(transfer.payload)}


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_back_and_send_again_in_the_browser_queues_one_transfer(live_server, ready):
    with chromium() as browser:
        page = log_in_and_fill_the_form(browser, live_server, ready)
        page.click("main button[type=submit]")
        page.wait_for_url(TRANSFER_PAGE)
        page.go_back()
        page.wait_for_url(re.compile(r"/transfers/send/$"))
        # The browser shows the form it kept, with its token; the file is chosen again.
        choose_the_file(page)
        page.click("main button[type=submit]")
        page.wait_for_url(TRANSFER_PAGE)
        notice = page.locator("main .alert-info").inner_text()
        url = page.url
    assert "allerede sat i kø" in notice or "already queued" in notice
    transfer = Transfer.objects.get()
    assert url.endswith(reverse("transfers:detail", args=[transfer.pk]))
