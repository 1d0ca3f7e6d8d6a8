"""A fake model server on 127.0.0.1 speaking the Anthropic Messages and OpenAI Chat
Completions wire formats, so the real SDK clients run against scripted replies."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str = ""
    stop: str = ""  # default: end_turn (Anthropic) / stop (OpenAI)
    usage: dict[str, Any] | None = None  # overrides the computed usage; {} sends none
    status: int = 200
    delay: float = 0.0
    output_tokens: int | None = None  # bill this many output tokens instead of the text's
    raw: bytes | None = None  # send these bytes as the 200 body instead of a well-formed reply
    before: Callable[[], None] | None = None  # called just before the reply is sent


@dataclass
class Seen:
    api: str  # "anthropic" | "openai"
    role: str
    body: dict[str, Any]
    headers: dict[str, str]
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return "\n".join(m["content"] for m in self.body["messages"] if m["role"] != "system")


def _role(system: str) -> str:
    for role in ("auditor", "doctor", "planner"):
        if f"You are the {role.title()}" in system:
            return role
    return "builder"


class FakeLLM:
    def __init__(self) -> None:
        self.replies: dict[str, deque[Reply]] = {
            role: deque() for role in ("builder", "auditor", "doctor", "planner")
        }
        self.seen: list[Seen] = []
        self.counted: list[int] = []
        self._lock = threading.Lock()
        # Answers a call when nothing is scripted for its role: (role, call) -> Reply.
        self.responder: Callable[[str, Seen], Reply] | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeLLM:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, role: str, *replies: Reply | str) -> None:
        for reply in replies:
            self.replies[role].append(Reply(reply) if isinstance(reply, str) else reply)

    def calls(self, role: str | None = None) -> list[Seen]:
        return [s for s in self.seen if role is None or s.role == role]

    def _next(self, role: str) -> Reply | None:
        with self._lock:
            return self.replies[role].popleft() if self.replies[role] else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.endswith("/v1/messages/count_tokens"):
                    # The same count the fake bills a message with, so admitted == billed.
                    text = body.get("system", "") + "\n".join(
                        m["content"] for m in body["messages"]
                    )
                    fake.counted.append(len(text) // 4)
                    return self._send(200, {"input_tokens": len(text) // 4})
                if self.path.endswith("/v1/messages"):
                    api, system = "anthropic", body.get("system", "")
                elif self.path.endswith("/chat/completions"):
                    api, system = "openai", body["messages"][0]["content"]
                else:
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                seen = Seen(api, _role(system), body, dict(self.headers))
                with fake._lock:
                    fake.seen.append(seen)
                reply = fake._next(seen.role)
                if reply is None and fake.responder is not None:
                    reply = fake.responder(seen.role, seen)
                if reply is None:
                    return self._error(
                        api, 500, f"fake server: no reply scripted for the {seen.role}"
                    )
                time.sleep(reply.delay)
                if reply.before is not None:
                    reply.before()
                if reply.status != 200:
                    return self._error(api, reply.status, f"fake {reply.status} error")
                if reply.raw is not None:
                    return self._send_bytes(200, reply.raw)
                prompt_chars = len(system) + len(seen.prompt)
                # Like a real provider, never bill more output than the request allowed.
                output = min(
                    reply.output_tokens or len(reply.text) // 4 + 1,
                    body["max_tokens"] if "max_tokens" in body else body["max_completion_tokens"],
                )
                if api == "anthropic":
                    seen.usage = reply.usage or {
                        "input_tokens": prompt_chars // 4,
                        "output_tokens": output,
                    }
                    return self._send(
                        200,
                        {
                            "id": f"msg_{len(fake.seen)}",
                            "type": "message",
                            "role": "assistant",
                            "model": body["model"],
                            "content": [{"type": "text", "text": reply.text}],
                            "stop_reason": reply.stop or "end_turn",
                            "stop_sequence": None,
                            "usage": seen.usage,
                        },
                    )
                prompt, completion = prompt_chars // 4, output
                seen.usage = (
                    reply.usage
                    if reply.usage is not None
                    else {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    }
                )
                return self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(fake.seen)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": reply.stop or "stop",
                                "message": {"role": "assistant", "content": reply.text},
                            }
                        ],
                        **({"usage": seen.usage} if seen.usage else {}),
                    },
                )

            def _error(self, api: str, status: int, message: str) -> None:
                if api == "anthropic":
                    kind = "rate_limit_error" if status == 429 else "api_error"
                    payload = {"type": "error", "error": {"type": kind, "message": message}}
                else:
                    payload = {"error": {"message": message, "type": "server_error"}}
                self._send(status, payload, {"retry-after-ms": "5"})

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), headers)

            def _send_bytes(self, status: int, data: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
