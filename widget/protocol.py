"""The visitor socket's protocol, declared once: every client and server message as a
`TypedDict`, the error codes, the close codes and the channel-layer group events.

docs/visitor-socket.md describes the protocol for the people writing clients (the hosted
chat page, the widget); the consumer (widget/consumers.py), `chatbot.answering` (which
produces the answer events) and the handoff flow (which sends group events) use these
shapes so that a change shows up in one diff.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# --- Close codes ---------------------------------------------------------------------------
# The socket is accepted and then closed with these, so that a browser sees the code (a
# refused handshake reaches a page as a bare 1006) and the page knows not to reconnect.
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_UNKNOWN_BOT = 4404  # also tenants.asgi's code for an unknown host (a refused handshake)
PERMANENT_CLOSE_CODES = frozenset({CLOSE_FORBIDDEN_ORIGIN, CLOSE_UNKNOWN_BOT})

# --- Error codes (server `error` messages; the socket stays open) --------------------------
ErrorCode = Literal[
    "bad_json",  # not a JSON object, or a binary frame
    "unknown_type",  # a `type` this protocol does not have
    "invalid",  # a field missing or malformed (visitor_id, rating, ids...)
    "empty",  # a message with no text
    "too_long",  # a message longer than the limit (or a frame far beyond it)
    "rate_limited",  # too many messages: `retry_after` says when to try again
    "busy",  # a message while the previous answer is still streaming
    "not_found",  # a conversation or message that is not this visitor's with this bot
    "no_conversation",  # feedback or handoff before the socket knows a conversation
    "quota_exceeded",  # the tenant's monthly quota is used up: `retry_after` until it resets
    "provider_error",  # the LLM failed (sent by chatbot.answering, then `done`)
    "internal",  # a bug: logged on the server
]


# --- Client → server -----------------------------------------------------------------------
class MessageIn(TypedDict):
    type: Literal["message"]
    text: str
    visitor_id: str
    conversation_id: NotRequired[str]


class StopIn(TypedDict):
    type: Literal["stop"]


class FeedbackIn(TypedDict):
    type: Literal["feedback"]
    message_id: str
    rating: Literal["up", "down"]
    visitor_id: NotRequired[str]


class HandoffIn(TypedDict):
    type: Literal["handoff"]
    visitor_id: NotRequired[str]
    conversation_id: NotRequired[str]


class ResumeIn(TypedDict):
    type: Literal["resume"]
    conversation_id: str
    visitor_id: str


class LeadIn(TypedDict):
    """The visitor's email address, when nobody could take the conversation."""

    type: Literal["lead"]
    email: str
    visitor_id: NotRequired[str]


ClientMessage = MessageIn | StopIn | FeedbackIn | HandoffIn | ResumeIn | LeadIn
CLIENT_TYPES = frozenset({"message", "stop", "feedback", "handoff", "resume", "lead"})


# --- Server → client -----------------------------------------------------------------------
class ConversationOut(TypedDict):
    type: Literal["conversation"]
    id: str


class TokenOut(TypedDict):
    type: Literal["token"]
    text: str


class SourceItem(TypedDict):
    number: int  # [n] in the answer cites the item with this number
    title: str
    url: str
    heading_path: list[str]
    snippet: str
    score: float
    chunk_id: str
    document_id: Any


class SourcesOut(TypedDict):
    type: Literal["sources"]
    items: list[SourceItem]


class DoneOut(TypedDict):
    type: Literal["done"]
    message_id: str | None  # None: stopped before an answer was saved
    answered: bool
    handoff: bool  # offer the visitor a person
    stopped: bool  # the visitor's `stop` (or nothing was streaming to stop: see the docs)


class ErrorOut(TypedDict):
    type: Literal["error"]
    code: ErrorCode
    message: str
    retry_after: NotRequired[int]  # seconds, with `rate_limited` and `quota_exceeded`


class StatusOut(TypedDict):
    type: Literal["status"]
    status: str  # conversations.models.Conversation.Status: bot, waiting, agent, closed
    agent: NotRequired[str]  # with "agent": the person's display name
    # With "waiting": whether a person can answer now (opening hours, agents online); if
    # not, `message` says so and the page offers to leave an email address (`lead`).
    available: NotRequired[bool]
    open: NotRequired[bool]
    agents_online: NotRequired[int]
    message: NotRequired[str]


class LeadOut(TypedDict):
    type: Literal["lead"]
    saved: bool


class RatedOut(TypedDict):
    type: Literal["rated"]
    message_id: str
    rating: str


class HistoryMessage(TypedDict):
    id: str
    role: str  # user, assistant, agent
    content: str
    sources: list[SourceItem]
    rating: str  # "", "up", "down"
    answered: bool | None
    created_at: str  # ISO 8601


class HistoryOut(TypedDict):
    type: Literal["history"]
    conversation_id: str
    status: str
    messages: list[HistoryMessage]


class AgentMessage(TypedDict):
    id: str
    content: str
    author: str  # the agent's display name (may be empty)
    created_at: str


class AgentMessageOut(TypedDict):
    type: Literal["agent_message"]
    message: AgentMessage


ServerMessage = (
    ConversationOut
    | TokenOut
    | SourcesOut
    | DoneOut
    | ErrorOut
    | StatusOut
    | RatedOut
    | HistoryOut
    | AgentMessageOut
    | LeadOut
)


# --- Channel-layer group events --------------------------------------------------------------
def conversation_group(schema_name: str, conversation_id: str) -> str:
    """Every socket of a conversation (a visitor's tabs) and the staff replying to it meet
    here. The schema is part of the name: no group spans tenants."""
    return f"chat.{schema_name}.{conversation_id}"


class AgentMessageEvent(TypedDict):
    """Sent by the handoff flow to `conversation_group(...)`: relayed as `agent_message`."""

    type: Literal["chat.agent_message"]
    message: AgentMessage


class StatusEvent(TypedDict):
    """Sent when a conversation's status changes: relayed as `status` with the same extra
    fields as StatusOut."""

    type: Literal["chat.status"]
    status: str
    agent: NotRequired[str]
    available: NotRequired[bool]
    open: NotRequired[bool]
    agents_online: NotRequired[int]
    message: NotRequired[str]
