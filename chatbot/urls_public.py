"""URLs of the public host (the bare base domain): the platform admin for superusers."""

from django.urls import path
from django.views.generic import RedirectView

from chatbot.admin_site import platform_admin

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", platform_admin.urls),
]

handler404 = "chatbot.views.not_found"
