"""Settings of the API benchmark only: development settings (DEBUG off) plus one bench-only URL, /bench/bare.

Nothing in trialsite imports this module; the bare view exists only in a process started with
DJANGO_SETTINGS_MODULE=bench.server.settings.
"""

from trialsite.settings.development import *  # noqa: F403

ROOT_URLCONF = "bench.server.urls"
