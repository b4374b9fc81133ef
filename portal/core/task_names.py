"""The dotted paths of the functions the portal queues and schedules, each written once.

django-q2 stores a task by its path and imports it only when a worker takes it: a path spelled
in two places can drift from its function (a rename, a move) without an error until a worker
fails on it, and two spellings of one path make two different marks in transfers.soon. The
paths are strings, not taken from the functions, because the modules that queue a task are
imported by the modules that define it; tests/test_schedules.py imports each one instead.
"""

# Sending, receipts and fetching (transfers).
SEND_TRANSFER = "transfers.tasks.send_transfer"
COLLECT_ACCOUNT_RECEIPTS = "transfers.tasks.collect_account_receipts"
COLLECT_RECEIPTS = "transfers.tasks.collect_receipts"
FETCH_INBOX = "transfers.fetch.fetch_inbox"
FETCH_ALL_INBOXES = "transfers.tasks.fetch_all_inboxes"
REQUEUE_ABANDONED_SENDS = "transfers.tasks.requeue_abandoned"
DELETE_EXPIRED_FILES = "transfers.retention.delete_expired_files"
PRUNE_TASK_HISTORY = "transfers.task_history.prune_task_history"

# Watched and delivery folders.
WATCH_FOLDERS = "handoff.tasks.watch_all"

# Mail, reminders and alerts.
SEND_MAIL = "portal.outbox.tasks.send_outgoing_mail"
REQUEUE_ABANDONED_MAIL = "portal.outbox.tasks.requeue_abandoned"
REMIND_RENEWALS = "gdpr.reminders.remind_renewals"
WEEKLY_DIGEST = "portal.onboarding.reminders.weekly_digest"
CHECK_EXPECTED_DELIVERIES = "portal.alerts.tasks.check_expected_deliveries"

ALL = (
    SEND_TRANSFER,
    COLLECT_ACCOUNT_RECEIPTS,
    COLLECT_RECEIPTS,
    FETCH_INBOX,
    FETCH_ALL_INBOXES,
    REQUEUE_ABANDONED_SENDS,
    DELETE_EXPIRED_FILES,
    PRUNE_TASK_HISTORY,
    WATCH_FOLDERS,
    SEND_MAIL,
    REQUEUE_ABANDONED_MAIL,
    REMIND_RENEWALS,
    WEEKLY_DIGEST,
    CHECK_EXPECTED_DELIVERIES,
)
