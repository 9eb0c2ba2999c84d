"""Generate a VAPID key pair for Web Push and print the settings lines (for .env)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from trialsite import vapid


class Command(BaseCommand):
    help = "Generate a VAPID key pair (P-256) and print WEBPUSH_VAPID_* lines for the environment."

    def add_arguments(self, parser):
        parser.add_argument("--subject", default="mailto:trial-team@example.org", help="a mailto: or https: URL")

    def handle(self, *args, subject: str, **options):
        private, public = vapid.generate()
        self.stdout.write(f"WEBPUSH_VAPID_PRIVATE_KEY={private}\n")
        self.stdout.write(f"WEBPUSH_VAPID_PUBLIC_KEY={public}\n")
        self.stdout.write(f"WEBPUSH_VAPID_SUBJECT={subject}\n")
        self.stderr.write("Keep the private key secret; changing the pair invalidates every stored subscription.")
