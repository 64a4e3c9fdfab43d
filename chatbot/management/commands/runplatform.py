"""`manage.py runplatform` (what `make run` calls): start the embedded services that are
not configured, migrate every schema, make sure the demo tenant exists, then run daphne,
a Celery worker and Celery beat in the foreground under honcho. Ctrl-C stops everything,
including the services this command started."""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import get_public_schema_name, schema_context

from chatbot import embedded
from chatbot.demo import ensure_demo_bot
from tenants.services import create_tenant_site, ensure_public_tenant

DEMO_SCHEMA = "demo"


def demo_password() -> str:
    path = embedded.VAR_DIR / "secrets" / "demo_admin_password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


class Command(BaseCommand):
    help = "Set up and run the whole platform in the foreground (web, worker, beat)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PARLEY_PORT", 8000)))
        parser.add_argument("--bind", default=os.environ.get("PARLEY_BIND", "127.0.0.1"))
        parser.add_argument(
            "--setup-only", action="store_true", help="prepare everything, then stop"
        )

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        started_at = time.monotonic()
        started = embedded.start_unconfigured(self.stderr.write)
        try:
            credentials = self.set_up()
            if options["setup_only"]:
                return
            self.serve(options["bind"], options["port"], credentials, started_at)
        finally:
            embedded.stop(started)

    def set_up(self) -> dict[str, str]:
        self.stderr.write("Migrating the public schema and every tenant schema…")
        call_command("migrate_schemas", interactive=False, verbosity=0, stdout=io.StringIO())
        call_command("collectstatic", interactive=False, verbosity=0)
        ensure_public_tenant()
        password = demo_password()
        email = f"admin@{DEMO_SCHEMA}.{settings.PARLEY_BASE_DOMAIN}"
        site = create_tenant_site(
            DEMO_SCHEMA, name="Demo", admin_email=email, admin_password=password
        )
        with schema_context(get_public_schema_name()):
            user, _ = get_user_model().objects.get_or_create(
                username="admin", defaults={"is_staff": True, "is_superuser": True}
            )
            user.set_password(password)
            user.save()
        bot = ensure_demo_bot(DEMO_SCHEMA)
        return {
            "host": site.domain.domain,
            "email": email,
            "password": password,
            "bot": bot.public_id,
        }

    def serve(self, bind: str, port: int, credentials: dict[str, str], started_at: float) -> None:
        python = Path(sys.executable)
        procfile = settings.BASE_DIR / "Procfile"
        env = {**os.environ, "PARLEY_BIND": bind, "PARLEY_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        env.setdefault("PATH", "")
        env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"
        for name, url in embedded.DEFAULT_URLS.items():
            env.setdefault(name, url)  # the children reach the very services started here
        honcho = subprocess.Popen(
            [str(python.parent / "honcho"), "-f", str(procfile), "start"],
            cwd=settings.BASE_DIR,
            env=env,
        )
        threading.Thread(
            target=self.announce_when_healthy,
            args=(port, credentials, started_at, honcho),
            daemon=True,
        ).start()
        signal.signal(signal.SIGTERM, lambda *_: honcho.send_signal(signal.SIGTERM))
        try:
            honcho.wait()
        except KeyboardInterrupt:  # the terminal sent SIGINT to honcho as well
            honcho.wait()

    def announce_when_healthy(
        self, port: int, credentials: dict[str, str], started_at: float, honcho
    ) -> None:  # type: ignore[no-untyped-def]
        url = f"http://127.0.0.1:{port}/healthz"
        while honcho.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            return
        elapsed = time.monotonic() - started_at
        host = credentials["host"]
        self.stdout.write(
            "\n"
            f"  Parley is up and healthy after {elapsed:.1f}s.\n"
            f"  Demo tenant console: http://{host}:{port}/admin/\n"
            f"    user:     {credentials['email']}\n"
            f"    password: {credentials['password']}\n"
            f"  Demo chat page:      http://{host}:{port}/chat/{credentials['bot']}/\n"
            f"  Platform admin:      http://{settings.PARLEY_BASE_DOMAIN}:{port}/admin/"
            f"  (user: admin, same password)\n"
            f"  Health:              http://{host}:{port}/healthz\n"
            "  Press Ctrl-C to stop everything.\n"
        )
        self.stdout.flush()
