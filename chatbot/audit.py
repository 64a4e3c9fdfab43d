"""The audit log: changes made by people (console users) and API keys to bots, knowledge
bases, sources, API keys and webhooks.

The actor lives in a context variable set per request (`AuditMiddleware` for console users,
`ApiKeyAuthentication` for API keys); model signals compare each tracked row with its
stored version and write an `AuditEntry`. Work without an actor (Celery tasks updating a
source's progress) is not audited: it is the system, not a person, changing the row.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.http import HttpRequest, HttpResponse

MASK = "••••••"


@dataclass(frozen=True)
class Actor:
    label: str
    user_id: int | None = None


_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("audit_actor", default=None)


def current_actor() -> Actor | None:
    return _actor.get()


def set_actor(actor: Actor | None) -> contextvars.Token:
    return _actor.set(actor)


class AuditMiddleware:
    """Makes the logged-in console user the actor of the request's changes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        actor = Actor(user.get_username(), user.pk) if user and user.is_authenticated else None
        token = set_actor(actor)
        try:
            return self.get_response(request)
        finally:
            _actor.reset(token)


@dataclass(frozen=True)
class Tracked:
    fields: frozenset[str] | None = None  # None: every concrete field
    secrets: frozenset[str] = frozenset()
    ignored: frozenset[str] = frozenset({"updated_at", "created_at", "last_used_at"})


TRACKED: dict[str, Tracked] = {
    "chatbot.bot": Tracked(secrets=frozenset({"api_key"})),
    "chatbot.apikey": Tracked(secrets=frozenset({"key_hash"})),
    "chatbot.webhook": Tracked(secrets=frozenset({"secret"})),
    "knowledge.knowledgebase": Tracked(secrets=frozenset({"embedder_api_key"})),
    # A source's status and counters move with ingestion: only its settings are audited.
    "knowledge.source": Tracked(fields=frozenset({"title", "kind", "config", "schedule"})),
}


def track(label: str, tracked: Tracked) -> None:
    """Add a model (e.g. "chatbot.webhook") to the audit log."""
    TRACKED[label] = tracked


def _spec(sender: type[models.Model]) -> Tracked | None:
    return TRACKED.get(sender._meta.label_lower)


def _values(instance: models.Model, spec: Tracked) -> dict[str, Any]:
    values = {}
    for field in instance._meta.concrete_fields:
        name = field.attname
        if name in spec.ignored or (spec.fields is not None and field.name not in spec.fields):
            continue
        values[field.name] = field.value_from_object(instance)
    return values


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)


def _diff(before: dict[str, Any], after: dict[str, Any], spec: Tracked) -> dict[str, Any]:
    changes = {}
    for name, new in after.items():
        old = before.get(name)
        if old == new:
            continue
        if name in spec.secrets:
            changes[name] = [MASK if old else "", MASK if new else ""]
        else:
            changes[name] = [_jsonable(old), _jsonable(new)]
    return changes


def _write(instance: models.Model, action: str, changes: dict[str, Any]) -> None:
    from chatbot.models import AuditEntry

    actor = current_actor()
    if actor is None:
        return
    AuditEntry.objects.create(
        actor=actor.label[:200],
        user_id=actor.user_id,
        action=action,
        object_type=instance._meta.verbose_name,
        object_id=str(instance.pk),
        object_repr=str(instance)[:300],
        changes=changes,
    )


def _before_save(sender, instance, raw=False, **kwargs) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(sender)
    if spec is None or raw or current_actor() is None:
        return
    stored = sender._base_manager.filter(pk=instance.pk).first() if instance.pk else None
    instance._audit_before = _values(stored, spec) if stored is not None else None


def _after_save(sender, instance, created, raw=False, **kwargs) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(sender)
    if spec is None or raw or current_actor() is None:
        return
    before = getattr(instance, "_audit_before", None)
    after = _values(instance, spec)
    if created or before is None:
        _write(instance, "created", _diff({}, after, spec))
        return
    changes = _diff(before, after, spec)
    if changes:
        _write(instance, "changed", changes)


def _after_delete(sender, instance, **kwargs) -> None:  # type: ignore[no-untyped-def]
    if _spec(sender) is not None:
        _write(instance, "deleted", {})


def _m2m(sender, instance, action, pk_set, model, **kwargs) -> None:  # type: ignore[no-untyped-def]
    if _spec(type(instance)) is None or action not in {"post_add", "post_remove"} or not pk_set:
        return
    field = next(
        (f.name for f in instance._meta.many_to_many if f.remote_field.through is sender), "links"
    )
    names = sorted(str(obj) for obj in model._base_manager.filter(pk__in=pk_set))
    key = "added" if action == "post_add" else "removed"
    _write(instance, "changed", {field: {key: names}})


def connect() -> None:
    pre_save.connect(_before_save, dispatch_uid="audit-pre-save")
    post_save.connect(_after_save, dispatch_uid="audit-post-save")
    post_delete.connect(_after_delete, dispatch_uid="audit-post-delete")
    m2m_changed.connect(_m2m, dispatch_uid="audit-m2m")
