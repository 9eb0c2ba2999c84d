from django.core.management.base import BaseCommand, CommandError

from trialsite.protocol.services import ProtocolError, protocol_load_file


class Command(BaseCommand):
    help = "Create or amend a trial from a protocol YAML file; prints the protocol version."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        try:
            result = protocol_load_file(path=path)
        except ProtocolError as exc:
            raise CommandError(
                "protocol not loaded, nothing changed:\n" + "\n".join(f"  {p}" for p in exc.problems)
            ) from exc
        v = result.version
        if not result.created:
            state = "unchanged"
        elif result.amended:
            state = "amendment"
        else:
            state = "created"
        self.stdout.write(f"{result.trial.slug} protocol version {v.version} ({state}) sha256={v.sha256}")
