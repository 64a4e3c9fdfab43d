"""ASGI entry point: HTTP through Django (tenant middleware first), WebSockets through
Parley's tenant and auth middleware. daphne serves both."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chatbot.routing import websocket_urlpatterns  # noqa: E402
from tenants.asgi import tenant_websocket_stack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": tenant_websocket_stack(URLRouter(websocket_urlpatterns)),
    }
)


def _warm_up() -> None:
    # Load the local embedder (its ONNX session), Chroma's client and the LLM SDKs now, in
    # the background, rather than in the first visitor's answer (seconds per process).
    import logging

    try:
        from knowledge import index
        from knowledge.embedding import local_embedder

        local_embedder().embed_query("warm up")
        index.client()
        import anthropic  # noqa: F401
        import openai  # noqa: F401
    except Exception:  # a missing model must not stop the server: answers will say so
        logging.getLogger(__name__).exception("embedder warm-up failed")


from django.conf import settings  # noqa: E402

if settings.PARLEY_WARM_UP:
    import threading

    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
