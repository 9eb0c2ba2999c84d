"""`manage.py demo [--design parallel|crossover|self-blinding|all ...]`: what `make run` uses. Idempotent: running
it again changes nothing that exists.

Without `--design` it loads the parallel demo trial (protocols/microdose-mood.yaml), as it always did. Each design
named is loaded as its own trial from its protocol file, at the same sites, with the same demo logins granted their
roles in it (staff in several trials, as in a multi-trial deployment) and its own synthetic participants.
`make run DEMO_DESIGNS=all` (trialsite.devrun) passes the designs on."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError

from trialsite.models import RoleGrant, Site, Trial
from trialsite.protocol.services import protocol_load_file
from trialsite.services import role_grant, site_create

PROTOCOLS = Path(settings.BASE_DIR) / "protocols"
DEMO_PROTOCOL = PROTOCOLS / "microdose-mood.yaml"
# design → (protocol file, simulation seed). The micro-dosing designs of PRODUCT.md "our edge".
DESIGNS = {
    "parallel": (DEMO_PROTOCOL, 2026),
    "crossover": (PROTOCOLS / "crossover.yaml", 2027),
    "self-blinding": (PROTOCOLS / "self-blinding.yaml", 2028),
}
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
        parser.add_argument(
            "--design",
            action="append",
            choices=[*DESIGNS, "all"],
            help="a trial design to load as its own demo trial (repeatable; default: parallel; all: every design)",
        )

    def handle(self, *args, participants, days, design=None, **options):
        if getattr(settings, "TRIALSITE_PRODUCTION", False):
            # The demo creates staff users with a published password and synthetic participants.
            raise CommandError(
                "manage.py demo refuses to run under production settings: it creates staff users with "
                "known passwords and synthetic participants. Use a development database."
            )
        names = list(DESIGNS) if "all" in (design or []) else list(dict.fromkeys(design or ["parallel"]))
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@trialsite.invalid", DEMO_PASSWORD)
        for name in names:
            self.load_design(name, participants=participants, days=days)
        self.stdout.write(f"demo logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write("  admin (superuser, blinded)")
        for username, role, site_code in DEMO_USERS:
            self.stdout.write(f"  {username:12} {role}{' @ ' + site_code if site_code else ''}")
        if len(names) > 1:
            self.stdout.write("  (each login holds its role in every demo trial above)")

    def load_design(self, name: str, *, participants: int, days: int) -> Trial:
        """The design's trial, its sites, the demo logins' grants in it and its synthetic participants (once)."""
        path, seed = DESIGNS[name]
        result = protocol_load_file(path=path)
        trial: Trial = result.trial
        for code, site_name, tz in DEMO_SITES:
            site_create(code=code, name=site_name, timezone=tz, trials=[trial])
        User = get_user_model()
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
                seed=seed,
                if_empty=True,
                stdout=self.stdout,
            )
        self.stdout.write(f"demo trial {trial.slug} ({name}) protocol v{result.version.version}; sites LDN, NYC")
        return trial
