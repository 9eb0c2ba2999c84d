"""`manage.py demo`: what `make run` uses. Idempotent: running it again changes nothing that exists."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError

from trialsite.models import RoleGrant, Site, Trial
from trialsite.protocol.services import protocol_load_file
from trialsite.services import role_grant, site_create

DEMO_PROTOCOL = Path(settings.BASE_DIR) / "protocols" / "microdose-mood.yaml"
DEMO_SITES = [("LDN", "London clinic", "Europe/London"), ("NYC", "New York clinic", "America/New_York")]
# Development-only logins, printed for the person running `make run`.
DEMO_PASSWORD = "demo-trialsite-2026"
DEMO_USERS = [
    ("coord_ldn", "coordinator", "LDN"),
    ("coord_nyc", "coordinator", "NYC"),
    ("pi", "trial_manager", None),
    ("safety", "safety_physician", None),
    ("datamanager", "data_manager", None),
    ("monitor", "monitor", None),
    ("stats", "statistician", None),
    ("unblinded", "unblinded_statistician", None),
]


class Command(BaseCommand):
    help = "Load the demo trial, its sites, staff users and synthetic participants (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--participants", type=int, default=40)
        parser.add_argument("--days", type=int, default=21)

    def handle(self, *args, participants, days, **options):
        if getattr(settings, "TRIALSITE_PRODUCTION", False):
            # The demo creates staff users with a published password and synthetic participants.
            raise CommandError(
                "manage.py demo refuses to run under production settings: it creates staff users with "
                "known passwords and synthetic participants. Use a development database."
            )
        result = protocol_load_file(path=DEMO_PROTOCOL)
        trial: Trial = result.trial
        for code, name, tz in DEMO_SITES:
            site_create(code=code, name=name, timezone=tz, trials=[trial])
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@trialsite.invalid", DEMO_PASSWORD)
        for username, role, site_code in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create_user(username, f"{username}@trialsite.invalid", DEMO_PASSWORD, is_staff=True)
            site = Site.objects.get(code=site_code) if site_code else None
            if not RoleGrant.objects.filter(user=user, role=role, trial=trial, site=site).exists():
                role_grant(user=user, role=role, trial=trial, site=site)
        if "simulate_trial" in get_commands() and participants > 0:
            call_command(
                "simulate_trial",
                trial=trial.slug,
                participants=participants,
                days=days,
                seed=2026,
                if_empty=True,
                stdout=self.stdout,
            )
        self.stdout.write(f"demo trial {trial.slug} protocol v{result.version.version}; sites LDN, NYC")
        self.stdout.write(f"demo logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write("  admin (superuser, blinded)")
        for username, role, site_code in DEMO_USERS:
            self.stdout.write(f"  {username:12} {role}{' @ ' + site_code if site_code else ''}")
