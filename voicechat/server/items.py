"""The conversation: ordered items with their audio, and ``conversation.item.create`` checks.

Items keep their audio as internal PCM16 24 kHz bytes per content index; ``Item.wire``
renders the GA item shape (audio bytes only when asked, as ``conversation.item.retrieved``
does). Ordering follows ``previous_item_id`` (``"root"`` inserts at the start).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voicechat.protocol.constants import MAX_CLIENT_ID_LEN, WIRE_RATE
from voicechat.server import apierrors as E
from voicechat.server import schema as S

AudioEncoder = Callable[[bytes], str]
MAX_AUDIO_BYTES = 64 * 2**20
"""About 23 minutes of 24 kHz audio kept per conversation; older items lose theirs first."""


@dataclass
class Item:
    id: str
    type: str
    role: str | None = None
    status: str = "completed"
    content: list[dict[str, Any]] = field(default_factory=list)
    audio: dict[int, bytearray] = field(default_factory=dict)
    name: str | None = None
    call_id: str | None = None
    arguments: str | None = None
    output: str | None = None
    dropped_ms: dict[int, float] = field(default_factory=dict)
    """Audio dropped to bound memory (still counted in usage, gone from retrieve)."""
    fields: dict[str, Any] = field(default_factory=dict)
    """The rest of an MCP item's wire fields (``server_label``, ``tools``, ``error``, ``approve``, …)."""

    def audio_ms(self, index: int = 0) -> float:
        return len(self.audio.get(index, b"")) / 2 / WIRE_RATE * 1000 + self.dropped_ms.get(index, 0.0)

    def wire(self, encode_audio: AudioEncoder | None = None) -> dict[str, Any]:
        """The GA item object; with ``encode_audio`` audio content carries its bytes."""
        out: dict[str, Any] = {"id": self.id, "object": "realtime.item", "type": self.type, "status": self.status}
        if self.type == "message":
            out["role"] = self.role
            parts = []
            for i, part in enumerate(self.content):
                part = dict(part)
                if encode_audio is not None and i in self.audio:
                    part["audio"] = encode_audio(bytes(self.audio[i]))
                parts.append(part)
            out["content"] = parts
        elif self.type == "function_call":
            out.update(name=self.name, call_id=self.call_id, arguments=self.arguments or "")
        elif self.type.startswith("mcp_"):  # the SDK's MCP item models: no object, no status
            out = {"id": self.id, "type": self.type, **self.fields}
            if self.type in ("mcp_call", "mcp_approval_request"):
                out.update(name=self.name, arguments=self.arguments or "")
            if self.output is not None:
                out["output"] = self.output
        else:
            out.update(call_id=self.call_id, output=self.output or "")
        return out


class Conversation:
    """Items in conversation order."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._items: dict[str, Item] = {}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._order)

    def get(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    def items(self) -> list[Item]:
        return [self._items[i] for i in self._order]

    def last_id(self) -> str | None:
        return self._order[-1] if self._order else None

    def previous_id(self, item_id: str) -> str | None:
        idx = self._order.index(item_id)
        return self._order[idx - 1] if idx else None

    def insert(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Add ``item`` after ``previous_item_id`` (end if ``None``); return its predecessor."""
        if previous_item_id is None:
            self._order.append(item.id)
        elif previous_item_id == "root":
            self._order.insert(0, item.id)
        else:
            self._order.insert(self._order.index(previous_item_id) + 1, item.id)
        self._items[item.id] = item
        return self.previous_id(item.id)

    def delete(self, item_id: str) -> None:
        self._order.remove(item_id)
        del self._items[item_id]

    def bound_audio(self, limit_bytes: int = MAX_AUDIO_BYTES) -> None:
        """Drop the audio of the oldest items while the conversation holds more than the limit."""
        total = sum(len(a) for item in self._items.values() for a in item.audio.values())
        for item_id in self._order:
            if total <= limit_bytes:
                return
            item = self._items[item_id]
            for index, audio in item.audio.items():
                if audio:
                    item.dropped_ms[index] = item.audio_ms(index)
                    total -= len(audio)
                    audio.clear()

    def has_call(self, call_id: str) -> bool:
        return any(i.type == "function_call" and i.call_id == call_id for i in self._items.values())


# ---- conversation.item.create -------------------------------------------------------------

_CONTENT_KEYS = {"type": S.anything, "text": S.string(), "audio": S.string(), "transcript": S.nullable(S.string()),
                 "image_url": S.string(), "detail": S.enum("auto", "low", "high")}
_ROLE_CONTENT = {
    "user": ("input_text", "input_audio", "input_image"),
    "assistant": ("output_text",),
    "system": ("input_text",),
}
_ITEM = S.obj(
    {
        "id": S.string(MAX_CLIENT_ID_LEN),
        "type": S.enum("message", "function_call", "function_call_output", "mcp_approval_response"),
        "object": S.enum("realtime.item"),
        "status": S.enum("completed", "incomplete", "in_progress"),
        "role": S.enum("user", "assistant", "system"),
        "content": S.array(S.obj(_CONTENT_KEYS, required=("type",))),
        "name": S.string(),
        "call_id": S.string(MAX_CLIENT_ID_LEN),
        "arguments": S.string(),
        "output": S.string(),
        "approval_request_id": S.string(),
        "approve": S.boolean,
        "reason": S.nullable(S.string()),
    },
    required=("type",),
)


def _required(raw: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key not in raw:
            raise E.missing_parameter(f"item.{key}")


def item_from_create(
    raw: Any,
    new_id: str,
    conversation: Conversation,
    decode_audio: Callable[[bytes], bytes],
) -> Item:
    """Validate a client ``item`` and build the stored ``Item`` (audio decoded to 24 kHz)."""
    if raw is None:
        raise E.missing_parameter("item")
    checked = _ITEM(raw, "item")
    item_id = checked.get("id") or new_id
    if item_id in conversation:
        raise E.ApiError("invalid_value", f"Item with id '{item_id}' already exists.", "item.id")
    kind = checked["type"]
    if kind == "function_call":
        _required(checked, "name", "arguments")
        return Item(item_id, kind, name=checked["name"], call_id=checked.get("call_id") or item_id[-16:],
                    arguments=checked["arguments"])
    if kind == "function_call_output":
        _required(checked, "call_id", "output")
        if not conversation.has_call(checked["call_id"]):
            raise E.ApiError(
                "invalid_value",
                f"No tool call found for function call output with call_id {checked['call_id']}.",
                "item.call_id",
            )
        return Item(item_id, kind, call_id=checked["call_id"], output=checked["output"])
    if kind == "mcp_approval_response":
        return _approval(item_id, checked, conversation)
    _required(checked, "role", "content")
    return _message(item_id, checked, decode_audio)


def _approval(item_id: str, checked: dict[str, Any], conversation: Conversation) -> Item:
    """The user's answer to an ``mcp_approval_request`` of this conversation."""
    _required(checked, "approval_request_id", "approve")
    request = conversation.get(checked["approval_request_id"])
    if request is None or request.type != "mcp_approval_request":
        raise E.ApiError("invalid_value", f"No MCP approval request found with id {checked['approval_request_id']}.",
                         "item.approval_request_id")
    fields = {"approval_request_id": request.id, "approve": checked["approve"]}
    if checked.get("reason"):
        fields["reason"] = checked["reason"]
    return Item(item_id, "mcp_approval_response", fields=fields)


def _message(item_id: str, checked: dict[str, Any], decode_audio: Callable[[bytes], bytes]) -> Item:
    role = checked["role"]
    item = Item(item_id, "message", role=role, status="completed")
    for i, part in enumerate(checked["content"]):
        path = f"item.content[{i}]"
        ptype = part["type"]
        if ptype not in _ROLE_CONTENT[role]:
            raise E.invalid_value(f"{path}.type", ptype, _ROLE_CONTENT[role])
        if ptype in ("input_text", "output_text"):
            _need(part, "text", path)
            item.content.append({"type": ptype, "text": part["text"]})
        elif ptype == "input_image":
            _need(part, "image_url", path)
            item.content.append({"type": ptype, "image_url": part["image_url"], "detail": part.get("detail", "auto")})
        else:
            item.content.append({"type": "input_audio", "transcript": part.get("transcript")})
            if "audio" in part:
                try:
                    wire = base64.b64decode(part["audio"], validate=True)
                except (binascii.Error, ValueError):
                    raise E.ApiError("invalid_value", "Invalid 'audio': not valid base64.", f"{path}.audio") from None
                item.audio[i] = bytearray(decode_audio(wire))
    return item


def _need(part: dict[str, Any], key: str, path: str) -> None:
    if key not in part:
        raise E.missing_parameter(f"{path}.{key}")
