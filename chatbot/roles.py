"""Staff roles of a tenant's console, as Django groups: owners run everything; agents work
the conversation inbox and handoffs, and see no API keys, provider settings or limits.

`ensure_roles()` (run after every migration of a tenant schema, and by the invite paths)
creates both groups and sets their permissions; `invite()` adds a staff member with a role
and returns a one-time link to choose a password.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

OWNER = "Owner"
AGENT = "Agent"
ROLES = {"owner": OWNER, "agent": AGENT}

# Owners: every permission of Parley's apps, and staff management.
OWNER_APPS = ("chatbot", "knowledge", "conversations", "widget")
OWNER_EXTRA = ("auth.view_user", "auth.add_user", "auth.change_user", "auth.view_group")
# Agents: the inbox and handoffs only.
AGENT_PERMISSIONS = (
    "conversations.view_conversation",
    "conversations.change_conversation",
    "conversations.view_message",
    "conversations.add_message",
)


def _permissions(codes: tuple[str, ...]) -> Q:
    query = Q(pk__in=[])
    for code in codes:
        app_label, codename = code.split(".")
        query |= Q(content_type__app_label=app_label, codename=codename)
    return query


def ensure_roles() -> dict[str, Group]:
    """Create or update both groups in the current tenant schema (idempotent)."""
    for config in apps.get_app_configs():
        create_permissions(config, verbosity=0)  # may run before auth's own handler
    owner, _ = Group.objects.get_or_create(name=OWNER)
    owner.permissions.set(
        Permission.objects.filter(
            Q(content_type__app_label__in=OWNER_APPS) | _permissions(OWNER_EXTRA)
        )
    )
    agent, _ = Group.objects.get_or_create(name=AGENT)
    agent.permissions.set(Permission.objects.filter(_permissions(AGENT_PERMISSIONS)))
    return {"owner": owner, "agent": agent}


def roles_after_migrate(sender, **kwargs) -> None:  # type: ignore[no-untyped-def]
    if sender.name == "chatbot" and connection.schema_name != "public":
        ensure_roles()


@dataclass
class Invitation:
    user: object
    created: bool
    link: str  # path of the one-time "choose your password" page


def invite(email: str, role: str) -> Invitation:
    """A staff member of the current tenant with the given role. A new user gets no
    password: the link lets them choose one (it expires with PASSWORD_RESET_TIMEOUT and
    stops working once used). Inviting an existing user changes their role."""
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    if role not in ROLES:
        raise ValidationError({"role": f"One of: {', '.join(ROLES)}."})
    User = get_user_model()
    with transaction.atomic():
        groups = ensure_roles()
        user, created = User.objects.get_or_create(
            username=email, defaults={"email": email, "is_staff": True}
        )
        if created:
            user.set_unusable_password()
        user.is_staff = user.is_active = True
        user.save()
        user.groups.remove(*groups.values())
        user.groups.add(groups[role])
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    return Invitation(user=user, created=created, link=link)


def role_of(user) -> str:  # type: ignore[no-untyped-def]
    if user.is_superuser:
        return "owner"
    names = set(user.groups.values_list("name", flat=True))
    if OWNER in names:
        return "owner"
    return "agent" if AGENT in names else ""
