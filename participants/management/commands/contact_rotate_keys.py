"""`manage.py contact_rotate_keys`: re-encrypt every participant's contact details with the current key.

Rotation: prepend a new Fernet key to FIELD_ENCRYPTION_KEY (old keys still decrypt), run this command,
then remove the old key from the setting.
"""

from django.core.management.base import BaseCommand

from participants.services.registration import contact_rotate_keys


class Command(BaseCommand):
    help = "Re-encrypt all stored contact details with the first key of FIELD_ENCRYPTION_KEY."

    def handle(self, *args, **options):
        n = contact_rotate_keys()
        self.stdout.write(f"re-encrypted contact details of {n} participants with the current key")
