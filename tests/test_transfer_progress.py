"""One transfer's page: live progress, timeline, XML, the local copy, cancel and resubmit."""

import hashlib
import html
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from lxml import etree

from tests.conftest import make_user
from tests.support import engine
from tests.support.clients import HTMX
from tests.support.records import established_route, make_transfer
from transfers import tasks, views
from transfers.models import Transfer
from transfers.queueing import queue_send

DATA = "kommunekode;cpr;navn\r\n751;0101011234;Åse Ørsted\r\n".encode() * 500


@pytest.fixture
def setup(ready_route) -> engine.ReadyRoute:
    return ready_route()


def queue(setup) -> Transfer:
    return queue_send(setup.route, io.BytesIO(DATA), original_name="borgere.csv", user=setup.staff)


def delivered(setup) -> Transfer:
    transfer = queue(setup)
    assert tasks.send_transfer(transfer.pk) == "sent"
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.DELIVERED
    return transfer


def progress(client, transfer, **params):
    response = client.get(reverse("transfers:progress", args=[transfer.pk]), params, **HTMX)
    assert response.status_code == 200
    return response


@pytest.fixture
def sending(staff_a, operator, system_a, system_b, aarhus):
    """A send 40 % through: 20 MB of 50 MB in the 10 s since it started."""
    from gdpr.models import InfRef

    infref = InfRef.objects.create(
        name="FagsystemdefineredeDataRefGDPR11_1", it_system=system_a, assigned_by=operator
    )
    route = established_route(infref, system_a, system_b, aarhus)
    started = timezone.now() - timedelta(seconds=30)
    return make_transfer(
        route,
        engine.account(system_a, "alfa_omsorg", None),
        size=50_000_000,
        state="sending",
        bytes_done=20_000_000,
        attempts=1,
        started_at=started,
        heartbeat_at=started + timedelta(seconds=10),
    )


def test_a_sending_transfer_shows_its_progress_and_keeps_polling(client_for, staff_a, sending):
    response = progress(client_for(staff_a), sending, shown="sending")
    body = response.content.decode()
    assert "<html" not in body
    assert 'id="transfer-progress-bar" max="50000000" value="20000000"' in body
    assert 'data-bytes-done="20000000" data-bytes-total="50000000"' in body
    assert re.search(r"20[,.]0 MB .* 50[,.]0 MB \(40 %\)", body)
    assert re.search(r'<span class="transfer-rate">2[,.]0 MB/s</span>', body)
    assert "15 s" in body  # 30 MB left at 2 MB/s
    assert f'hx-get="/transfers/{sending.pk}/progress/?shown=sending"' in body
    assert 'hx-trigger="every 1s"' in body
    assert "hx-swap-oob" not in body  # nothing changed since the page showed it


def test_the_progress_figures():
    now = timezone.now()
    transfer = Transfer(
        size=3_000_000_000,
        bytes_done=600_000_000,
        state="sending",
        started_at=now - timedelta(seconds=200),
    )
    figures = views.Progress.of(transfer, now)
    assert (figures.percent, figures.bytes_per_second, figures.seconds_left) == (20, 3e6, 800)
    with translation.override("en"):
        assert (figures.time_left_text, figures.rate_text) == ("13 min 20 s", "3.0 MB/s")
    transfer.bytes_done = 0
    assert views.Progress.of(transfer, now).rate_text == ""
    transfer.size, transfer.state = 0, "sent"
    assert views.Progress.of(transfer, now).percent == 100


def test_a_final_transfer_stops_polling_and_announces_the_change(client_for, setup):
    transfer = delivered(setup)
    client = client_for(setup.staff)
    body = progress(client, transfer, shown="sending").content.decode()
    assert "hx-trigger" not in body and "hx-get" not in body
    assert "<progress" not in body
    assert 'id="transfer-announcer" hx-swap-oob="innerHTML"' in body
    assert 'id="transfer-reload"' in body  # the receipt came after the page was drawn
    assert f'data-state="{Transfer.State.DELIVERED}"' in body

    body = progress(client, transfer, shown="delivered").content.decode()
    assert "hx-swap-oob" not in body and 'id="transfer-reload"' not in body


def test_the_progress_fragment_without_htmx_is_the_page(client, client_for, staff_a, sending):
    url = reverse("transfers:progress", args=[sending.pk])
    response = client_for(staff_a).get(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("transfers:detail", args=[sending.pk])
    page = client_for(staff_a).get(response["Location"]).content.decode()
    assert 'aria-live="polite"' in page
    assert "<noscript>" in page
    assert 'hx-trigger="every 1s"' in page


def pre_blocks(page: str) -> list[str]:
    return [
        html.unescape(block) for block in re.findall(r'<pre class="xml">(.*?)</pre>', page, re.S)
    ]


def test_the_detail_shows_the_timeline_and_the_xml_indented(client_for, setup):
    transfer = delivered(setup)
    page = client_for(setup.staff).get(reverse("transfers:detail", args=[transfer.pk]))
    body = page.content.decode()
    trigger, receipt = pre_blocks(body)
    for shown, stored in ((trigger, transfer.trigger_xml), (receipt, transfer.receipt_xml)):
        assert "\n  <" in shown  # indented
        parser = etree.XMLParser(remove_blank_text=True)
        assert etree.tostring(etree.fromstring(shown.encode(), parser)) == etree.tostring(
            etree.fromstring(stored.encode(), parser)
        )
    steps = [step.at for step in page.context["timeline"]]
    assert steps == [
        transfer.queued_at,
        transfer.started_at,
        transfer.sent_at,
        transfer.finished_at,
    ]
    assert body.count("<time datetime=") == 4
    assert transfer.sha256 in body
    assert str(transfer.file_transfer_uuid) in body


def test_xml_that_does_not_parse_is_shown_as_text_and_entities_stay_unexpanded(tmp_path):
    assert views.pretty_xml("<a><b>not closed</a>") == "<a><b>not closed</a>"
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    hostile = (
        f'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r><v>&x;&b;</v></r>'
    )
    shown = views.pretty_xml(hostile)
    assert "TOP SECRET" not in shown
    assert "aaaaaaaaaa" not in shown
    assert "&x;" in shown


def test_a_failed_transfer_shows_kombits_error_and_may_be_sent_again(client_for, setup):
    engine.load_registry(setup.sim, routes=())  # the platform knows no route
    transfer = queue(setup)
    tasks.send_transfer(transfer.pk)
    client = client_for(setup.staff)
    url = reverse("transfers:detail", args=[transfer.pk])
    body = client.get(url).content.decode()
    assert "KOMBIT" in body and "106" in body
    assert 'id="transfer-kombit-error"' in body
    assert 'id="transfer-resubmit"' in body and 'id="transfer-cancel"' not in body
    assert "hx-trigger" not in body.split('id="transfer-status"')[1].split(">")[0]

    # Cancel is only for a queued transfer.
    assert client.post(reverse("transfers:cancel", args=[transfer.pk])).status_code == 302
    assert Transfer.objects.get(pk=transfer.pk).state == Transfer.State.FAILED

    engine.load_registry(setup.sim)
    response = client.post(reverse("transfers:resubmit", args=[transfer.pk]))
    assert response["Location"] == url
    transfer.refresh_from_db()
    assert (transfer.state, transfer.error_code) == (Transfer.State.QUEUED, None)
    body = client.get(url).content.decode()
    assert 'id="transfer-cancel"' in body and 'hx-trigger="every 1s"' in body

    assert tasks.send_transfer(transfer.pk) == "sent"
    assert Transfer.objects.get(pk=transfer.pk).attempts == 2
    # A delivered transfer is neither sent again nor cancelled.
    client.post(reverse("transfers:resubmit", args=[transfer.pk]))
    client.post(reverse("transfers:cancel", args=[transfer.pk]))
    assert Transfer.objects.get(pk=transfer.pk).state == Transfer.State.DELIVERED


def test_only_the_sending_vendor_may_cancel_a_queued_transfer(
    client_for, setup, staff_b, architect
):
    transfer = queue(setup)
    cancel = reverse("transfers:cancel", args=[transfer.pk])
    for onlooker in (staff_b, architect):  # they see it, but it is not theirs to change
        client = client_for(onlooker)
        body = client.get(reverse("transfers:detail", args=[transfer.pk])).content.decode()
        assert 'id="transfer-cancel"' not in body
        assert client.post(cancel).status_code == 403
        assert client.post(reverse("transfers:resubmit", args=[transfer.pk])).status_code == 403
    client_for(setup.staff).post(cancel)
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.CANCELLED and transfer.finished_at
    steps = [step.label for step in views.timeline(transfer)]
    assert steps == [views.timeline(transfer)[0].label, str(Transfer.State.CANCELLED.label)]


def test_the_local_copy_is_downloaded_by_the_sending_vendor(client_for, setup, superuser):
    transfer = delivered(setup)
    url = reverse("transfers:download", args=[transfer.pk])
    for user in (setup.staff, superuser):
        client = client_for(user)
        assert (
            'id="transfer-download"'
            in client.get(reverse("transfers:detail", args=[transfer.pk])).content.decode()
        )
        response = client.get(url)
        assert response.status_code == 200
        body = b"".join(response.streaming_content)
        assert body == DATA
        assert response["X-Content-SHA256"] == hashlib.sha256(DATA).hexdigest()
        assert 'filename="borgere.csv"' in response["Content-Disposition"]

    Path(transfer.payload).unlink()
    assert client_for(setup.staff).get(url).status_code == 404
    page = client_for(setup.staff).get(reverse("transfers:detail", args=[transfer.pk]))
    assert 'id="transfer-download"' not in page.content.decode()


def test_only_the_sending_vendor_gets_the_local_copy(client_for, setup, staff_b, architect):
    transfer = delivered(setup)
    url = reverse("transfers:download", args=[transfer.pk])
    for onlooker in (staff_b, architect):  # the receiver and the municipality see the transfer
        client = client_for(onlooker)
        assert client.get(reverse("transfers:detail", args=[transfer.pk])).status_code == 200
        assert client.get(url).status_code == 403
    from portal.accounts.models import Organisation

    vendor = Organisation.objects.create(kind="vendor", name="Gamma IT", cvr="10000009")
    client = client_for(make_user("stranger", vendor))
    for name in ("detail", "progress", "download"):
        response = client.get(reverse(f"transfers:{name}", args=[transfer.pk]), **HTMX)
        assert response.status_code == 404, name
