"""The django-q2 schedule's entry: one round over every watched and delivery folder."""

from handoff import delivery, watch


def watch_all() -> str:
    taken = watch.scan_all()
    written = delivery.deliver_all()
    return (
        f"queued {taken.queued}, refused {taken.refused}, waiting {taken.waiting}; "
        f"delivered {written.delivered}"
    )
