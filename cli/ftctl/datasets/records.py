"""The rules for one record (one JSONL line) of a fine-tuning file.

The vendor's full client-side semantic check (together 1.x ``validate_messages`` and
``validate_preference_openai``, newest in the together 2.14 wheel), plus the rules the server
enforces beyond it that can be checked offline (tool calling, reasoning, sample weights), as
``docs/datasets.md`` lists them. Where the vendor wrote a message, it is used word for word; the
others are ours, in the same style.

``check_record`` raises ``Problem`` for the first broken rule of a record (the vendor also stops
at the first), or returns the record's format and its count of text characters (for the token
estimate). The happy path is plain dict and type tests, no regex: it runs once per line.
"""

from __future__ import annotations

from typing import Any

# Format names: ours (FileReport.format) and the vendor's enum (quoted in its messages).
GENERAL, CONVERSATIONAL, INSTRUCTION, PREFERENCE = "general", "conversational", "instruction", "preference"
VENDOR_ENUM = {GENERAL: "DatasetFormat.GENERAL", CONVERSATIONAL: "DatasetFormat.CONVERSATION",
               INSTRUCTION: "DatasetFormat.INSTRUCTION", PREFERENCE: "DatasetFormat.PREFERENCE_OPENAI"}

# Keys a record of each format may carry: the required ones, `tools` for conversations (2.14),
# and a top-level sample `weight` in every format (server rule).
ALLOWED_KEYS = {
    GENERAL: frozenset({"text", "weight"}),
    CONVERSATIONAL: frozenset({"messages", "tools", "weight"}),
    INSTRUCTION: frozenset({"prompt", "completion", "weight"}),
    PREFERENCE: frozenset({"input", "preferred_output", "non_preferred_output", "weight"}),
}
ROLES = ("system", "user", "assistant", "tool")
_ROLE_SET = frozenset(ROLES)
_PLAIN_ROLES = frozenset({"system", "user", "assistant"})  # a tool turn also needs its tool_call_id
IMAGE_PREFIXES = ("data:image/jpeg;base64,", "data:image/png;base64,", "data:image/webp;base64,")
MAX_IMAGES_PER_EXAMPLE = 10
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_BASE64_IMAGE_LENGTH = len("data:image/jpeg;base64,") + 4 * MAX_IMAGE_BYTES // 3
DOCS_URL = "https://docs.together.ai/docs/fine-tuning-data-preparation"


class Problem(Exception):
    """A broken rule: ``rule`` is a short stable id, ``message`` the text a user reads."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def detect_format(record: dict, n: int) -> str:
    """The vendor's detection order: text, messages, prompt+completion, input+both outputs; then
    any key outside the format (and its allowed extras) is an error."""
    if "text" in record:
        fmt = GENERAL
    elif "messages" in record:
        fmt = CONVERSATIONAL
    elif "prompt" in record and "completion" in record:
        fmt = INSTRUCTION
    elif "input" in record and "preferred_output" in record and "non_preferred_output" in record:
        fmt = PREFERENCE
    else:
        raise Problem("format", f"Error parsing file. Could not detect a format for the line {n} with the "
                                f"columns: {record.keys()}")
    allowed = ALLOWED_KEYS[fmt]
    for key in record:
        if key not in allowed:
            raise Problem("extra-column", f'Found extra column "{key}" in the line {n}.')
    return fmt


def check_record(record: dict, n: int) -> tuple[str, int]:
    """Validate one record (line ``n``, 1-based): its format and its number of text characters."""
    fmt = detect_format(record, n)
    if "weight" in record:
        _sample_weight(record["weight"], n)
    if fmt is CONVERSATIONAL:
        if "tools" in record:
            _tools(record["tools"], n)
        return fmt, _messages(record["messages"], n, require_assistant=True)
    if fmt is GENERAL:
        return fmt, _content(record["text"], "user", n)[0]
    if fmt is INSTRUCTION:
        return fmt, _content(record["prompt"], "user", n)[0] + _content(record["completion"], "assistant", n)[0]
    return fmt, _preference(record, n)


def _sample_weight(weight: Any, n: int) -> None:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 \
            or weight == float("inf"):
        raise Problem("sample-weight", f"The sample `weight` must be a non-negative number on line {n}. "
                                       f"Found {weight!r}.")


def _messages(messages: Any, n: int, *, require_assistant: bool) -> int:
    """``validate_messages``: returns the characters of text in the conversation."""
    if not isinstance(messages, list):
        raise Problem("messages", f"Invalid format on line {n} of the input file. The `messages` column must be "
                                  f"a list. Found {type(messages)}")
    if not messages:
        raise Problem("messages", f"Invalid format on line {n} of the input file. The `messages` column must not "
                                  "be empty.")
    chars = 0
    images = 0
    multimodal: bool | None = None
    has_assistant = False
    previous = None
    for message in messages:
        if type(message) is dict and len(message) == 2:  # the common case, {"role": ..., "content": "..."}
            role = message.get("role")
            content = message.get("content")
            if type(role) is str and type(content) is str and role in _PLAIN_ROLES:
                if role == previous:
                    raise _role_turns(n)
                previous = role
                if role == "assistant":
                    has_assistant = True
                if content:
                    if multimodal:
                        raise _mixed_content()
                    multimodal = False
                    chars += len(content)
                continue
        # anything else: every rule, in the vendor's order
        if type(message) is not dict:
            raise Problem("messages", f"Invalid format on line {n} of the input file. The `messages` column must "
                                      f"be a list of dicts. Found {type(message)}")
        if "role" not in message:
            raise Problem("missing-field", f"Missing required column `role` in message on line {n}.")
        role = message["role"]
        if "content" not in message:
            if role != "assistant":
                raise Problem("missing-field", f"Missing required column `content` in message on line {n}.")
            if "tool_calls" not in message:
                raise Problem("missing-field", f"Missing required column `content` or `tool_calls` in message "
                                               f"on line {n}.")
        weight = message.get("weight")
        if "weight" in message:
            _message_weight(weight, n)
        if type(role) is not str:
            raise Problem("role", f"Invalid role `{role}` in conversation on line {n}. Role must be a string. "
                                  f"Found {type(role)}")
        if role not in _ROLE_SET:
            raise Problem("role", f"Invalid role `{role}` in conversation on line {n}. Possible roles: "
                                  f"{', '.join(ROLES)}")
        if role == previous and role != "tool":  # parallel tool calls answer with several tool turns
            raise _role_turns(n)
        previous = role
        if role == "assistant":
            has_assistant = True
        if len(message) != 2 or "content" not in message or role == "tool":  # else nothing more to check
            chars += _message_extras(message, role, n)
        content = message.get("content")
        if content is None or content == "":
            continue
        if type(content) is str:
            chars += len(content)
            is_multimodal, count = False, 0
        else:
            text, is_multimodal, count = _content(content, role, n)
            chars += text
            if count and weight:
                raise Problem("image-weight", "Messages with images cannot have non-zero weights.")
            images += count
        if multimodal is None:
            multimodal = is_multimodal
        elif multimodal != is_multimodal:
            raise _mixed_content()
    if images > MAX_IMAGES_PER_EXAMPLE:
        raise Problem("images", f"The dataset is malformed, the `messages` must contain at most "
                                f"{MAX_IMAGES_PER_EXAMPLE} images. Found {images} images.")
    if require_assistant and not has_assistant:
        raise Problem("no-assistant", f"Invalid format on line {n} of the input file. At least one message with "
                                      "the assistant role must be present in the example.")
    return chars


def _role_turns(n: int) -> Problem:
    return Problem("role-turns", f"Invalid role turns on line {n} of the input file. After the optional system "
                                 "message, conversation roles must alternate between user/assistant/user/assistant.")


def _mixed_content() -> Problem:
    return Problem("mixed-content", "Messages in the conversation must be either all in multimodal or all in "
                                    "text-only format.")


def _message_weight(weight: Any, n: int) -> None:
    if type(weight) is not int:  # a JSON true/false is not a weight
        raise Problem("weight", f"Weight must be an integer on line {n}.")
    if weight not in (0, 1):
        raise Problem("weight", f"Weight must be either 0 or 1 on line {n}.")


def _message_extras(message: dict, role: str, n: int) -> int:
    """Tool calls, tool results and reasoning (server rules): their characters."""
    chars = 0
    if "tool_calls" in message:
        if role != "assistant":
            raise Problem("tool-calls", f"Only assistant messages can have `tool_calls` on line {n}.")
        chars += _tool_calls(message["tool_calls"], n)
    if role == "tool":
        call_id = message.get("tool_call_id")
        if type(call_id) is not str or not call_id:
            raise Problem("tool-message", f"A message with the `tool` role must have a string `tool_call_id` "
                                          f"on line {n}.")
    for key in ("reasoning", "reasoning_content"):
        if key in message:
            value = message[key]
            if role != "assistant":
                raise Problem("reasoning", f"Only assistant messages can have `{key}` on line {n}.")
            if type(value) is not str:
                raise Problem("reasoning", f"The `{key}` field must be a string on line {n}. Found {type(value)}")
            chars += len(value)
    return chars


def _tool_calls(calls: Any, n: int) -> int:
    if type(calls) is not list or not calls:
        raise Problem("tool-calls", f"The `tool_calls` field must be a non-empty list on line {n}.")
    chars = 0
    for call in calls:
        function = call.get("function") if type(call) is dict else None
        if (type(function) is not dict or type(call.get("id")) is not str or call.get("type") != "function"
                or type(function.get("name")) is not str or type(function.get("arguments")) is not str):
            raise Problem("tool-calls", "Each tool call must be {\"id\": str, \"type\": \"function\", \"function\": "
                                        f"{{\"name\": str, \"arguments\": str}}}} on line {n}.")
        chars += len(function["name"]) + len(function["arguments"])
    return chars


def _tools(tools: Any, n: int) -> None:
    if type(tools) is not list:
        raise Problem("tools", f"The `tools` field must be a list of function definitions on line {n}. "
                               f"Found {type(tools)}")
    for tool in tools:
        function = tool.get("function") if type(tool) is dict else None
        if type(function) is not dict or tool.get("type") != "function" or type(function.get("name")) is not str:
            raise Problem("tools", "Each tool must be {\"type\": \"function\", \"function\": {\"name\": str, ...}} "
                                   f"on line {n}.")


def _content(content: Any, role: str, n: int) -> tuple[int, bool, int]:
    """``_check_message_content``: (text characters, multimodal?, number of images)."""
    if type(content) is str:
        return len(content), False, 0
    if type(content) is not list:
        raise Problem("content", f"Invalid content type on line {n} of the input file. Expected string or "
                                 f"multimodal list of dicts, found {type(content)}")
    chars = images = 0
    for item in content:
        if type(item) is not dict:
            raise Problem("content", "The dataset is malformed, the `content` field must be a list of dicts.")
        if "type" not in item:
            raise Problem("content", "The dataset is malformed, the `content` field must be a list of dicts with a "
                                     "`type` field.")
        kind = item["type"]
        if kind == "text":
            text = item.get("text")
            if type(text) is not str:
                raise Problem("content", "The dataset is malformed, the `text` field must be present in the "
                                         f"`content` item field and be a string. Got '{text!r}' instead.")
            chars += len(text)
        elif kind == "image_url":
            _image(item, role)
            images += 1
        else:
            raise Problem("content", "The dataset is malformed, the `type` field must be either 'text' or "
                                     f"'image_url'. Got {kind!r}.")
    if images > MAX_IMAGES_PER_EXAMPLE:
        raise Problem("images", f"The dataset is malformed, the `content` field must contain at most "
                                f"{MAX_IMAGES_PER_EXAMPLE} images, found {images}.")
    return chars, True, images


def _image(item: dict, role: str) -> None:
    if role != "user":
        raise Problem("image", "The dataset is malformed, only user messages can contain images.")
    image_url = item.get("image_url")
    if type(image_url) is not dict:
        raise Problem("image", "The dataset is malformed, the `image_url` field must be present in the `content` "
                               f"field and be a dictionary. Got {image_url!r} instead.")
    url = image_url.get("url")
    if not url or type(url) is not str:
        raise Problem("image", "The dataset is malformed, the `url` field must be present in the `image_url` field "
                               f"and be a string. Got {url!r} instead.")
    if not url.startswith(IMAGE_PREFIXES):
        raise Problem("image", "The dataset is malformed, the `url` field must be either a JPEG, PNG or WEBP "
                               "base64-encoded image in 'data:image/<format>;base64,<base64_encoded_image>' "
                               f"format. Got '{url[:100]}...' instead.")
    if len(url) > MAX_BASE64_IMAGE_LENGTH:
        raise Problem("image-size", "The dataset is malformed, the `url` field must contain base64-encoded image "
                                    f"that is less than {MAX_IMAGE_BYTES // (1024**2)}MB, found "
                                    f"~{len(url) * 3 // 4} bytes.")


def _preference(record: dict, n: int) -> int:
    """``validate_preference_openai``: input conversation, then exactly one assistant reply each."""
    source = record["input"]
    if type(source) is not dict:
        raise Problem("preference", "The dataset is malformed, the `input` field must be a dictionary.")
    if "messages" not in source:
        raise Problem("preference", "The dataset is malformed, the `input` dictionary must contain a `messages` "
                                    "field.")
    if "tools" in source:
        _tools(source["tools"], n)
    chars = _messages(source["messages"], n, require_assistant=False)
    if source["messages"][-1]["role"] == "assistant":
        raise Problem("preference", f"The last message in the input conversation must not be from the assistant "
                                    f"on line {n}.")
    for key in ("preferred_output", "non_preferred_output"):
        output = record[key]
        if type(output) is not list:
            raise Problem("preference", f"The dataset is malformed, the `{key}` field must be a list on line {n}.")
        if len(output) != 1:
            raise Problem("preference", f"The dataset is malformed, the `{key}` list must contain exactly one "
                                        f"message on line {n}.")
        reply = output[0]
        if type(reply) is not dict:
            raise Problem("preference", f"The dataset is malformed, the first element of `{key}` must be a "
                                        f"dictionary on line {n}.")
        if "role" not in reply:
            raise Problem("preference", f"The dataset is malformed, the first element of `{key}` must have a "
                                        f"'role' field on line {n}.")
        if reply["role"] != "assistant":
            raise Problem("preference", f"The dataset is malformed, the first element of `{key}` must have the "
                                        f"'assistant' role on line {n}.")
        if "content" not in reply and "tool_calls" not in reply:
            raise Problem("preference", f"The dataset is malformed, the first element of `{key}` must have a "
                                        f"'content' or 'tool_calls' field on line {n}.")
        if "weight" in reply:
            _message_weight(reply["weight"], n)
        chars += _message_extras(reply, "assistant", n)
        if reply.get("content") is not None:
            chars += _content(reply["content"], "assistant", n)[0]
    return chars
