"""Console pages for staff: invite a colleague with a role; users listed with their role."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from chatbot import roles
from chatbot.console import ConsoleView

User = get_user_model()


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(
        choices=[
            ("agent", "Agent: the inbox and handoffs"),
            ("owner", "Owner: everything, including bots, keys and staff"),
        ],
        widget=forms.RadioSelect,
        initial="agent",
    )


def invite_view(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation = roles.invite(form.cleaned_data["email"], form.cleaned_data["role"])
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            link = request.build_absolute_uri(invitation.link)
            send_mail(
                "You are invited to the Parley console",
                f"{request.user.get_username()} invited you to {request.get_host()}.\n\n"
                f"Choose your password here (the link works once): {link}\n",
                None,
                [invitation.user.email],
                fail_silently=True,  # the link is also shown to the inviting owner
            )
            messages.success(
                request,
                f"Invited {invitation.user.email} as {form.cleaned_data['role']}. "
                f"They received this link by email: {link}",
            )
            return HttpResponseRedirect(reverse("admin:auth_user_changelist"))
    context = {
        **admin.site.each_context(request),
        "title": "Invite staff",
        "form": form,
    }
    return TemplateResponse(request, "admin/staff/invite.html", context)


admin.site.register_view(
    ConsoleView(key="invite", name="Invite staff", url_name="invite", permission="auth.add_user"),
    path(
        "invite/",
        admin.site.admin_view(
            # Only those who may add users may invite (owners); checked per request.
            lambda request: invite_view(request)
            if request.user.has_perm("auth.add_user")
            else HttpResponse(status=403)
        ),
        name="invite",
    ),
)


class StaffAdmin(UserAdmin):
    list_display = ["username", "email", "role", "is_active", "last_login"]
    list_filter = ["groups", "is_active", "is_superuser"]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="Role")
    def role(self, user) -> str:  # type: ignore[no-untyped-def]
        if user.is_superuser:
            return "owner (superuser)"
        names = {group.name for group in user.groups.all()}
        return "owner" if roles.OWNER in names else "agent" if roles.AGENT in names else "—"


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, StaffAdmin)
