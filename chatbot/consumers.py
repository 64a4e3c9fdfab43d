"""`/ws/ping/`: a small authenticated consumer proving the WebSocket wiring end to end
(tenant middleware, tenant-aware auth, channels-redis group messaging)."""

from __future__ import annotations

from typing import Any, TypedDict

from channels.generic.websocket import AsyncJsonWebsocketConsumer

CLOSE_UNAUTHENTICATED = 4401


class PongMessage(TypedDict):
    type: str
    tenant: str
    user: str
    echo: Any


def staff_group(schema_name: str) -> str:
    """Channel-layer groups always carry the schema name: no group spans tenants."""
    return f"{schema_name}.staff"


class PingConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope["user"]
        if not (user.is_authenticated and user.is_staff):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = staff_group(self.scope["tenant"].schema_name)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Round-trip through the channel layer so that the reply proves Redis works too.
        await self.channel_layer.send(
            self.channel_name, {"type": "staff.pong", "echo": content.get("echo")}
        )

    async def staff_pong(self, event: dict[str, Any]) -> None:
        message: PongMessage = {
            "type": "pong",
            "tenant": self.scope["tenant"].schema_name,
            "user": self.scope["user"].get_username(),
            "echo": event.get("echo"),
        }
        await self.send_json(message)
