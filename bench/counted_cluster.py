"""`manage.py qcluster` that counts the queries its processes send to the task queue's table.

    BENCH_QUERY_COUNT=FILE [BENCH_PLAIN_ORM=1] python -m bench.counted_cluster

Run in a portal's environment (bench.latency starts it in its throwaway portal). Every database
connection any of the cluster's processes opens (they fork from this one) counts its queries of
django-q2's queue table (django_q_ormq) into one shared counter, written to FILE twenty times a
second. BENCH_PLAIN_ORM=1 runs the cluster on django-q2's plain ORM broker instead of the
portal's (portal.core.queue_broker), to compare what each asks of the database at rest. Only the
queue's queries are counted: the rest (the scheduler's round every 30 s, the heartbeat) is the
same code under either broker, and a window of seconds would count a round or not by chance.
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
        if "django_q_ormq" in sql:
            with queries.get_lock():
                queries.value += 1
        return execute(sql, params, many, context)

    def counted(connection, **_kwargs) -> None:
        connection.execute_wrappers.append(count)

    connection_created.connect(counted, weak=False)
    if os.environ.get("BENCH_PLAIN_ORM"):
        Conf.BROKER_CLASS = None
    out = Path(os.environ["BENCH_QUERY_COUNT"])
    written = out.with_name(out.name + ".new")

    def report() -> None:
        # Replaced whole: the bench reading it between a truncation and a write read nothing.
        while True:
            written.write_text(str(queries.value))
            os.replace(written, out)
            time.sleep(0.05)

    threading.Thread(target=report, daemon=True).start()
    call_command("qcluster")


if __name__ == "__main__":
    main()
