"""Several workers on one database, as two hosts run them: each file is sent exactly once, none
is lost, and fetches of one inbox at the same time take each file once. bench/scale_out.py
measures the first with 200 sends."""

import io

import pytest
from django.conf import settings
from django.utils import timezone

from bench.end_to_end import RECEIVER, SENDER, wait_for_idle
from bench.scale_out import CLUSTERS, UploadLog, queue_sends, sent_once, share, wait_until_fetched
from tests.support.workers import worker_cluster
from transfers import fetch, sessions, tasks
from transfers.models import ReceivedFile
from transfers.queueing import queue_send

SENDS = 40


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="two clusters stand for two hosts, which cannot share an SQLite file; "
    "the suite's PostgreSQL pass runs this",
)
def test_two_clusters_share_the_sends_and_send_each_exactly_once(tmp_path, ready_route, staff_a):
    # bench/scale_out.py counts the uploads under the accounts' names of its own.
    ready = ready_route(municipalities=2, usernames=(SENDER, RECEIVER))
    uploads = UploadLog(ready.sim)
    logs = {cluster: tmp_path / f"cluster-{cluster}.log" for cluster in CLUSTERS}

    with worker_cluster(output=logs["a"]) as first, worker_cluster(output=logs["b"]) as second:
        wait_for_idle([first, second], timeout=60)
        since = timezone.now()
        transfers = queue_sends(list(ready.routes.values()), SENDS, staff_a)
        rows, received = wait_until_fetched(transfers, timeout=120)

    assert sent_once(rows, received, uploads, ready.sim, since) == []
    sends = {c: share(logs, since)[c]["tasks"].get("send_transfer", 0) for c in CLUSTERS}
    assert sum(sends.values()) == SENDS
    assert all(sends.values()), f"one cluster took every send: {sends}"


def test_a_fetch_that_finds_its_file_taken_by_another_fetch_leaves_it_alone(ready_route, staff_a):
    ready = ready_route()
    receiver = ready.receiver
    data = io.BytesIO(b"kommunekode;navn\r\n751;A\r\n")
    transfer = queue_send(ready.route, data, original_name="a.csv", user=staff_a)
    assert tasks.send_transfer(transfer.pk) == "sent"

    late = sessions.session_for(receiver)
    listed = late.list_entries("IN")  # one fetch has listed the inbox...
    assert fetch.fetch_inbox(receiver.pk).received == 1  # ...when another takes the pair
    assert fetch._fetch_pairs(late, receiver, [transfer.remote_name], listed) == ["gone"]

    [record] = ReceivedFile.objects.all()
    assert (record.state, record.sha256) == (ReceivedFile.State.RECEIVED, transfer.sha256)
