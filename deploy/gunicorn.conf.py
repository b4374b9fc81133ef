"""gunicorn settings for the portal's web process, each one read from the environment.

Started as `gunicorn --config deploy/gunicorn.conf.py portal.wsgi` from the checkout, by
deploy/systemd/fdd-portal-web.service and deploy/Procfile alike; deploy/.env.example lists the
variables. A malformed number stops gunicorn naming the variable, as the portal's settings do.
"""

import os


def env_int(name: str, default: int, minimum: int = 1) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name}={value!r} is not a whole number.") from None
    if number < minimum:
        raise SystemExit(f"{name}={number} is below the minimum of {minimum}.")
    return number


# Loopback: only the TLS proxy on the same host reaches gunicorn. With BEHIND_TLS_PROXY on, the
# portal believes X-Forwarded-Proto and X-Forwarded-For from whoever connects, so a wider bind
# (a proxy on another host) must be closed to everyone but that proxy by the network. Set
# explicitly so that the PORT a Procfile manager hands out cannot widen it to every interface.
bind = [
    address.strip()
    for address in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
    if address.strip()
]

# Threads serve what waits (a streamed CSV export, an upload written to disk as it arrives, the
# database); processes serve the CPU, so one per core, and never fewer than two, so one busy or
# restarting process does not stop the site.
worker_class = "gthread"
threads = env_int("GUNICORN_THREADS", 4)
workers = env_int("GUNICORN_WORKERS", max(2, len(os.sched_getaffinity(0))))

# A gthread worker reports to the master between requests' threads, so a long export is not cut
# off by this; it bounds a worker that stopped answering altogether before it is replaced.
timeout = env_int("GUNICORN_TIMEOUT", 120)
# On stop or restart, requests in progress get this long to finish. The systemd unit waits
# longer (TimeoutStopSec) before it kills what is left.
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 60)

# The addresses whose X-Forwarded-Proto gunicorn itself believes (for wsgi.url_scheme): the proxy.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Access log on stdout, error log on stderr: systemd's journal or the process manager keeps both.
# The client's address as the proxy saw it (the last X-Forwarded-For entry, the one the portal
# counts failed logins against) and the time taken, in milliseconds, are added to the usual line.
accesslog = "-"
errorlog = "-"
access_log_format = (
    '%(h)s "%({x-forwarded-for}i)s" %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'
)

proc_name = "fdd-portal-web"
# gunicorn 25+ opens a control socket in the user's home by default, where two instances of one
# user would take over each other's. Nothing here uses it: systemd and honcho send signals.
control_socket_disable = True
