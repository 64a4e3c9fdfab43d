"""Two admin sites: each tenant's console (Django's default site, at the tenant's host) and
the platform admin (public host) where superusers manage tenants and domains."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User


class PlatformAdminSite(admin.AdminSite):
    site_header = "Parley platform"
    site_title = "Parley platform"
    index_title = "Tenants and platform settings"

    def has_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        # Only platform superusers: the public schema has no tenant staff.
        return bool(request.user.is_active and request.user.is_superuser)


platform_admin = PlatformAdminSite(name="platform_admin")
platform_admin.register(User, UserAdmin)
platform_admin.register(Group, GroupAdmin)


def move_platform_models_off_tenant_admin() -> None:
    """django-celery-beat registers itself on the default site, but its tables live in the
    public schema only: show them in the platform admin, never in a tenant's console."""
    from django_celery_beat import models as beat

    for model in (
        beat.PeriodicTask,
        beat.IntervalSchedule,
        beat.CrontabSchedule,
        beat.SolarSchedule,
        beat.ClockedSchedule,
    ):
        if admin.site.is_registered(model):
            model_admin = admin.site._registry[model]
            admin.site.unregister(model)
            if not platform_admin.is_registered(model):
                platform_admin.register(model, type(model_admin))
