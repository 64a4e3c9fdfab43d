"""`manage.py services up|down|status|exec -- CMD…`: the embedded PostgreSQL, Redis and
Chroma of a zero-configuration install (see chatbot/embedded.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot import embedded


class Command(BaseCommand):
    help = "Start, stop or inspect the embedded services, or run a command with them up."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["up", "down", "status", "exec"])
        parser.add_argument("argv", nargs="*", help="with exec: the command to run")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        action = options["action"]
        echo = self.stderr.write
        if action == "up":
            embedded.start_unconfigured(echo)
        elif action == "down":
            embedded.stop([s for s in embedded.SERVICES if not s.configured()])
        elif action == "status":
            for service in embedded.SERVICES:
                state = (
                    "configured"
                    if service.configured()
                    else ("running" if service.running() else "stopped")
                )
                self.stdout.write(f"{service.name}: {state}")
        else:
            if not options["argv"]:
                raise CommandError("exec needs a command: services exec -- pytest -x")
            started = embedded.start_unconfigured(echo)
            try:
                # manage.py put its own DJANGO_SETTINGS_MODULE in the environment; the command
                # (pytest, with its own settings module) must not inherit it.
                env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
                code = subprocess.call(options["argv"], env=env)
            finally:
                embedded.stop(started)
            sys.exit(code)
