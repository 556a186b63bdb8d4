"""Builders for every client event voicechat sends (GA shapes, JSON-ready dicts)."""

from __future__ import annotations

from typing import Any

from voicechat.protocol.codec import b64encode_audio
from voicechat.protocol.session_config import SessionConfig

ClientEvent = dict[str, Any]


def _event(etype: str, event_id: str | None, **fields: Any) -> ClientEvent:
    event: ClientEvent = {"type": etype}
    if event_id is not None:
        event["event_id"] = event_id
    event.update(fields)
    return event


def session_update(config: SessionConfig | dict[str, Any], event_id: str | None = None) -> ClientEvent:
    session = config.to_wire() if isinstance(config, SessionConfig) else config
    return _event("session.update", event_id, session=session)


def input_audio_append(pcm: bytes, event_id: str | None = None) -> ClientEvent:
    return _event("input_audio_buffer.append", event_id, audio=b64encode_audio(pcm))


def input_audio_commit(event_id: str | None = None) -> ClientEvent:
    return _event("input_audio_buffer.commit", event_id)


def input_audio_clear(event_id: str | None = None) -> ClientEvent:
    return _event("input_audio_buffer.clear", event_id)


def _message(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": content}


def text_message(role: str, text: str) -> dict[str, Any]:
    """A message item of plain text (``output_text`` for the assistant, ``input_text`` otherwise)."""
    return _message(role, [{"type": "output_text" if role == "assistant" else "input_text", "text": text}])


def item_create(
    item: dict[str, Any], previous_item_id: str | None = None, event_id: str | None = None
) -> ClientEvent:
    fields: dict[str, Any] = {"item": item}
    if previous_item_id is not None:
        fields["previous_item_id"] = previous_item_id
    return _event("conversation.item.create", event_id, **fields)


def user_text(text: str, previous_item_id: str | None = None, event_id: str | None = None) -> ClientEvent:
    return item_create(text_message("user", text), previous_item_id, event_id)


def user_image(
    data_url: str, text: str | None = None, event_id: str | None = None
) -> ClientEvent:
    content: list[dict[str, Any]] = [{"type": "input_image", "image_url": data_url}]
    if text:
        content.append({"type": "input_text", "text": text})
    return item_create(_message("user", content), event_id=event_id)


def assistant_text(text: str, previous_item_id: str | None = None, event_id: str | None = None) -> ClientEvent:
    """An assistant message as text (assistant audio cannot be re-created)."""
    return item_create(text_message("assistant", text), previous_item_id, event_id)


def function_call_output(call_id: str, output: str, event_id: str | None = None) -> ClientEvent:
    return item_create({"type": "function_call_output", "call_id": call_id, "output": output}, event_id=event_id)


def mcp_approval_response(item_id: str, approval_request_id: str, approve: bool, reason: str | None = None,
                          event_id: str | None = None) -> ClientEvent:
    """The user's answer to an ``mcp_approval_request`` (``item_id``: the new item's own id)."""
    item: dict[str, Any] = {"type": "mcp_approval_response", "id": item_id,
                            "approval_request_id": approval_request_id, "approve": approve}
    if reason:
        item["reason"] = reason
    return item_create(item, event_id=event_id)


def item_truncate(item_id: str, audio_end_ms: int, content_index: int = 0, event_id: str | None = None) -> ClientEvent:
    return _event(
        "conversation.item.truncate",
        event_id,
        item_id=item_id,
        content_index=content_index,
        audio_end_ms=max(0, int(audio_end_ms)),
    )


def item_delete(item_id: str, event_id: str | None = None) -> ClientEvent:
    return _event("conversation.item.delete", event_id, item_id=item_id)


def item_retrieve(item_id: str, event_id: str | None = None) -> ClientEvent:
    return _event("conversation.item.retrieve", event_id, item_id=item_id)


def response_create(response: dict[str, Any] | None = None, event_id: str | None = None) -> ClientEvent:
    if response:
        return _event("response.create", event_id, response=response)
    return _event("response.create", event_id)


def response_cancel(response_id: str | None = None, event_id: str | None = None) -> ClientEvent:
    if response_id:
        return _event("response.cancel", event_id, response_id=response_id)
    return _event("response.cancel", event_id)
