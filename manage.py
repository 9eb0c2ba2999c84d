#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.development")
    if os.environ["DJANGO_SETTINGS_MODULE"] == "trialsite.settings.development":
        # A second terminal next to `make run`: its embedded servers (or new ones, as make run starts them).
        from trialsite.localstack import development_environment

        development_environment(sys.argv)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
