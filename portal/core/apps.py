from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "portal.core"
    label = "core"
    verbose_name = _("Portal")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_migrate

        import portal.core.schema  # noqa: F401 - importing it registers its check
        from portal.core import paths, queue_broker, schedules, task_context
        from portal.core.middleware import IdleSessionMiddleware

        # Before anything opens the database or writes a file: a fresh clone has no data folder.
        paths.prepare()
        user_logged_in.connect(IdleSessionMiddleware.seen_at_login, dispatch_uid="idle-session")
        # A task logs the id of the request that queued it (django-q2's signals).
        task_context.connect()
        # Once per migrate, for the app whose table the schedules are.
        post_migrate.connect(
            schedules.after_migrate,
            sender=self.apps.get_app_config("django_q"),
            dispatch_uid="portal-schedules",
        )
        post_migrate.connect(
            queue_broker.keep_order_index,
            sender=self.apps.get_app_config("django_q"),
            dispatch_uid="portal-queue-order",
        )
