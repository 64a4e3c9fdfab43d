"""URLs of a tenant's host: its admin, its API and (later) its visitor pages."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from chatbot.api import BotViewSet, MeView
from conversations.api import ConversationViewSet, MessageFeedbackView
from conversations.api_analytics import AnalyticsSummaryView
from knowledge.api import KnowledgeBaseViewSet, SourceViewSet

router = SimpleRouter()
router.register("knowledge-bases", KnowledgeBaseViewSet, basename="knowledge-base")
router.register("sources", SourceViewSet, basename="source")
router.register("bots", BotViewSet, basename="bot")
router.register("conversations", ConversationViewSet, basename="conversation")

api_v1 = [
    path("me/", MeView.as_view(), name="api-me"),
    path("messages/<str:pk>/feedback/", MessageFeedbackView.as_view(), name="message-feedback"),
    path("analytics/summary/", AnalyticsSummaryView.as_view(), name="analytics-summary"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    *router.urls,
]

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # Invited staff choose their password here (Django's views, the admin's templates).
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("api/v1/", include(api_v1)),
    path("", include("widget.urls")),
]

handler404 = "chatbot.views.not_found"
