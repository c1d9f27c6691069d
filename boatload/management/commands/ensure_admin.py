"""Make sure the `admin` superuser exists, without any well-known default password.

Password sources, first match wins: ADMINHASH (a ready Django password hash, so
container deployments never carry a plaintext), BOATLOAD_ADMIN_PASSWORD (set even when
the user exists), or a generated password printed once when the user is new.
"""
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import identify_hasher
from django.core.management.base import BaseCommand, CommandError

from common.env import env_str


class Command(BaseCommand):
    help = "Create or update the admin superuser (see ADMINHASH and BOATLOAD_ADMIN_PASSWORD)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        users = get_user_model()
        user, created = users.objects.get_or_create(username=username, defaults={"is_staff": True,
                                                                                 "is_superuser": True})
        password_hash = env_str("ADMINHASH")
        password = env_str("BOATLOAD_ADMIN_PASSWORD")
        if password_hash:
            try:
                identify_hasher(password_hash)
            except ValueError:
                raise CommandError("ADMINHASH is not a Django password hash (make one with "
                                   "`python -c 'from django.contrib.auth.hashers import make_password; "
                                   "print(make_password(\"…\"))'`).") from None
            user.password = password_hash
            source = "ADMINHASH"
        elif password:
            user.set_password(password)
            source = "BOATLOAD_ADMIN_PASSWORD"
        elif created:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            source = None
        else:
            self.stdout.write(f"User {username} exists; password left as it is.")
            return
        user.is_staff = user.is_superuser = True
        user.save()
        if source:
            self.stdout.write(f"User {username} {'created' if created else 'updated'}; password from {source}.")
        else:
            self.stdout.write(self.style.WARNING(
                f"Created user {username} with password {password}  (shown once; "
                "set BOATLOAD_ADMIN_PASSWORD to choose it)"))
