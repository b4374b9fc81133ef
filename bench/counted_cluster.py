"""`manage.py qcluster` that counts every query its processes send to the database.

    BENCH_QUERY_COUNT=FILE [BENCH_PLAIN_ORM=1] python -m bench.counted_cluster

Run in a portal's environment (bench.latency starts it in its throwaway portal). Every database
connection any of the cluster's processes opens (they fork from this one) counts its queries
into one shared counter, written to FILE four times a second. BENCH_PLAIN_ORM=1 runs the cluster
on django-q2's plain ORM broker instead of the portal's (portal.core.queue_broker), to compare
what each asks of the database at rest.
"""

import multiprocessing
import os
import threading
import time
from pathlib import Path


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db.backends.signals import connection_created
    from django_q.conf import Conf

    queries = multiprocessing.Value("Q", 0)

    def count(execute, sql, params, many, context):
        with queries.get_lock():
            queries.value += 1
        return execute(sql, params, many, context)

    def counted(connection, **_kwargs) -> None:
        connection.execute_wrappers.append(count)

    connection_created.connect(counted, weak=False)
    if os.environ.get("BENCH_PLAIN_ORM"):
        Conf.BROKER_CLASS = None
    out = Path(os.environ["BENCH_QUERY_COUNT"])

    def report() -> None:
        while True:
            out.write_text(str(queries.value))
            time.sleep(0.25)

    threading.Thread(target=report, daemon=True).start()
    call_command("qcluster")


if __name__ == "__main__":
    main()
