"""A task logs the id of the request that queued it (portal.core.logs), in whichever worker, on
whichever host, runs it.

django-q2 hands its `pre_enqueue` signal the task dict just before it pickles and signs the whole
dict for the broker, and its worker gets that dict back, every key kept, in `pre_execute`. The id
travels as one more key of the dict: never an argument of the task's function, and not a field
of the stored Task row either.

A task queued outside a request (by the schedule, a management command, the folder watcher)
gets a new id when it starts; the tasks it queues in turn carry that one.
"""

from contextlib import AbstractContextManager

from django_q.signals import post_execute_in_worker, pre_enqueue, pre_execute

from portal.core import logs

TASK_KEY = "portal_request_id"
# The context each running task entered, by task id, until the worker says it has finished.
_running: dict[str, AbstractContextManager] = {}


def carry_request_id(sender, task: dict, **kwargs) -> None:
    request_id = logs.current_request_id()
    if request_id is not None:
        task[TASK_KEY] = request_id


def enter_task(sender, func, task: dict, **kwargs) -> None:
    context = logs.request_context(task.get(TASK_KEY) or logs.new_request_id())
    context.__enter__()
    _running[task["id"]] = context


def leave_task(sender, func, task: dict, **kwargs) -> None:
    # A worker takes task after task; a task run in the caller's process (django-q2's `sync`)
    # must leave the caller's id as it was.
    context = _running.pop(task["id"], None)
    if context is not None:
        context.__exit__(None, None, None)


def connect() -> None:
    pre_enqueue.connect(carry_request_id, dispatch_uid="portal-request-id-enqueue")
    pre_execute.connect(enter_task, dispatch_uid="portal-request-id-execute")
    post_execute_in_worker.connect(leave_task, dispatch_uid="portal-request-id-executed")
