import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import User

DEMO_EMAIL = "demo@slmlab.local"


class Command(BaseCommand):
    help = "Create the demo operator login unless it exists; its credentials go to the data dir."

    def handle(self, *args, **options) -> None:
        login_file = settings.DATA_DIR / ".demo_login"
        if User.objects.filter(email=DEMO_EMAIL).exists():
            if not login_file.exists():
                login_file.write_text(f"{DEMO_EMAIL} (password set earlier)\n")
            self.stdout.write(f"demo login {DEMO_EMAIL} exists")
            return
        password = secrets.token_urlsafe(9)
        User.objects.create_superuser(DEMO_EMAIL, password, display_name="Demo")
        login_file.write_text(f"{DEMO_EMAIL} / {password}\n")
        login_file.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"created demo login {DEMO_EMAIL}"))
