import getpass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from trialsite.models import Site, Trial
from trialsite.roles import ALL_ROLES
from trialsite.services import role_grant, staff_user_create


class Command(BaseCommand):
    help = "Give a staff user a role in a trial, optionally at one site (creating the user with --create)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=ALL_ROLES)
        parser.add_argument("--site", help="site code, for site-scoped roles")
        parser.add_argument("--trial", help="trial slug (needed only when there is more than one trial)")
        parser.add_argument("--create", action="store_true", help="create the user if missing")
        parser.add_argument("--password", help="password for --create (prompted when omitted)")
        parser.add_argument("--email", default="")

    def handle(self, *args, username, role, site, trial, create, password, email, **options):
        User = get_user_model()
        trial_obj = None
        if trial:
            trial_obj = Trial.objects.filter(slug=trial).first()
            if trial_obj is None:
                raise CommandError(f"unknown trial {trial!r}")
        site_obj = None
        if site:
            site_obj = Site.objects.filter(code=site).first()
            if site_obj is None:
                raise CommandError(f"unknown site {site!r}")
        user = User.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"no user {username!r} (add --create to create it)")
            if password is None:
                password = getpass.getpass(f"Password for {username}: ")
            try:
                user = staff_user_create(username=username, password=password, email=email)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
        try:
            grant = role_grant(user=user, role=role, trial=trial_obj, site=site_obj)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"{username}: {role} in {grant.trial.slug} at {site_obj.code if site_obj else 'all sites'}")
