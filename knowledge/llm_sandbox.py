"""A fake OpenAI-compatible API for development, tests and benchmarks: no LLM account needed.

    python -m knowledge.llm_sandbox --port 8002

Point a tenant at it with the base URL http://127.0.0.1:8002/v1 (settings.LLM_SANDBOX_URL, which
`make run` starts it on) and the key `sandbox-llm-key`. It answers like a careful, grounded model, but
deterministically and without any model:

- `POST /v1/chat/completions`: the question is the last user message; the context is what the prompt
  holds between `<context>` and `</context>` (else every system message). The answer is the one or two
  context sentences that share the most words with the question; with none sharing enough, it says it
  cannot answer. With `response_format` `json_object`/`json_schema` the answer is the JSON object
  `{"answer", "can_answer", "sources"}`; with `tools` it is a call of the first (or the chosen) function
  with those arguments. Copilot tasks (`Task: summarise|translate|rewrite-…`) get a deterministic text.
- `POST /v1/embeddings`: hashed bag-of-words vectors (deterministic, normalised; `dimensions` honoured).
- `GET /v1/models`.
- Bearer key check (401 as OpenAI answers it).

Control (`/_sandbox/…` over HTTP, or the LLMSandbox methods in a thread): `fail` the next N requests with
a status (429 with Retry-After, 500…), `hang` the next N requests for some seconds (a client timeout),
a `latency` for every answer, `state` (the requests received), `reset`.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import re
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

DEFAULT_KEY = "sandbox-llm-key"
CHAT_MODEL = "sandbox-chat"
EMBEDDING_MODEL = "sandbox-embed"
EMBEDDING_DIMENSIONS = 256
CANNOT_ANSWER = {
    "en": "I'm sorry, I can't answer that from the information I have.",
    "es": "Lo siento, no puedo responder a eso con la información que tengo.",
    "pt": "Desculpe, não consigo responder a isso com as informações que tenho.",
}

WORD_RE = re.compile(r"\w+", re.UNICODE)
SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
CONTEXT_RE = re.compile(r"<context>\s*\n(.*?)\n\s*</context>", re.DOTALL | re.IGNORECASE)
TASK_RE = re.compile(r"^\s*Task:\s*([\w-]+)(?:\s+to\s+([\w-]+))?", re.IGNORECASE | re.MULTILINE)
PASSAGE_RE = re.compile(r"^\s*\[(\d+)\]")

# Words that carry no meaning for the overlap (en, es, pt): a question shares them with every sentence.
STOPWORDS = frozenset(
    " ".join(
        [
            "a an and are as at be been but by can could do does did for from had has have how i if in into",
            "is it its me my of on or our please so than that the their them there these they this to us",
            "was we were what when where which who why will with would you your tell know want need get el",
            "la los las un una unos unas y o de del al en con por para que como cual cuales cuando donde es",
            "son esta estan este esto eso su sus mi mis tu tus se lo le les me nos hay ser estar puedo",
            "puede quiero saber tiene tienen hacer o a os as um uma uns umas e de do da dos das no na nos",
            "nas em com por para que como qual quais quando onde eu voce voces seu sua seus suas meu minha",
            "se lhe ha ser estar posso pode quero saber tem fazer",
        ]
    ).split()
)
LANGUAGE_WORDS = {
    "es": frozenset(
        [
            "el",
            "la",
            "los",
            "las",
            "es",
            "son",
            "cuanto",
            "cuánto",
            "cuesta",
            "qué",
            "que",
            "hola",
            "gracias",
            "por",
            "favor",
            "de",
            "del",
            "y",
            "con",
            "para",
            "una",
            "quiero",
            "puedo",
            "dónde",
            "cómo",
        ]
    ),
    "pt": frozenset(
        [
            "o",
            "os",
            "as",
            "é",
            "são",
            "quanto",
            "custa",
            "olá",
            "obrigado",
            "obrigada",
            "por",
            "favor",
            "de",
            "do",
            "da",
            "e",
            "com",
            "para",
            "uma",
            "quero",
            "posso",
            "onde",
            "como",
            "você",
            "não",
        ]
    ),
    "en": frozenset(
        [
            "the",
            "is",
            "are",
            "how",
            "much",
            "what",
            "hello",
            "thanks",
            "please",
            "of",
            "and",
            "with",
            "for",
            "a",
            "i",
            "want",
            "can",
            "where",
            "do",
            "does",
            "you",
        ]
    ),
}


def fold(text: str) -> str:
    """Lower case without accents: "Cuánto" and "cuanto" are one word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stem(word: str) -> str:
    """A crude stemmer good enough for overlap in en/es/pt: the first five letters ("shipping",
    "shipped" → "shipp"; "entregas", "entrega" → "entre")."""
    return word[:5] if len(word) > 5 else word.rstrip("s") or word


def content_words(text: str) -> set[str]:
    return {stem(word) for word in WORD_RE.findall(fold(text)) if word not in STOPWORDS and len(word) > 1}


def guess_language(text: str) -> str:
    words = set(WORD_RE.findall(text.casefold()))
    scores = {language: len(words & vocabulary) for language, vocabulary in LANGUAGE_WORDS.items()}
    best = max(scores, key=lambda language: scores[language])
    return best if scores[best] > 0 else "en"


def count_tokens(text: str) -> int:
    """About what an OpenAI tokenizer says: a token per word or punctuation mark."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def embed_text(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector: each content word hashed into a bucket with a sign."""
    vector = [0.0] * dimensions
    for word in content_words(text) or {fold(text.strip()) or "empty"}:
        digest = hashlib.sha256(word.encode()).digest()
        bucket = int.from_bytes(digest[:4], "big") % dimensions
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector))
    if not norm:  # words that cancelled out: still a unit vector, and still the same for the same text
        vector[int(hashlib.sha256(text.encode()).hexdigest(), 16) % dimensions] = 1.0
        norm = 1.0
    return [value / norm for value in vector]


@dataclass
class Failure:
    status: int
    times: int = 1
    retry_after: float | None = None
    message: str = ""


@dataclass
class LLMSandboxState:
    api_key: str = DEFAULT_KEY
    latency: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    # (seconds, times): the next `times` requests wait this long before answering.
    hangs: list[list[float]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Answer:
    text: str
    can_answer: bool
    sources: list[int]


def split_sentences(text: str) -> list[str]:
    """Sentences, a wrapped line's break being a space: a paragraph ends at a blank line, a heading
    (`#`) or a passage marker (`[n]`), which are sentences of their own."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or PASSAGE_RE.match(stripped):
            if current:
                paragraphs.append(" ".join(current))
                current = []
            if stripped:
                paragraphs.append(stripped)
            continue
        current.append(stripped)
    if current:
        paragraphs.append(" ".join(current))
    return [
        part.strip()
        for paragraph in paragraphs
        for part in SENTENCE_RE.split(paragraph)
        if part and part.strip()
    ]


def grounded_answer(question: str, context: str) -> Answer:
    """The one or two context sentences that best overlap the question, or a refusal."""
    wanted = content_words(question)
    language = guess_language(question)
    best: list[tuple[float, int, str, int]] = []
    passage = 0
    for position, sentence in enumerate(split_sentences(context)):
        marker = PASSAGE_RE.match(sentence)
        if marker:
            passage = int(marker.group(1))
            sentence = sentence[marker.end() :].strip()
        shared = wanted & content_words(sentence)
        if not shared:
            continue
        score = len(shared) / max(1, len(wanted))
        best.append((score, -position, sentence, passage))
    best.sort(reverse=True)
    # A paraphrase shares few words with its answer: one shared content word is enough to answer from the
    # best sentences; none at all is a question the context does not cover.
    good = best
    if not good:
        return Answer(CANNOT_ANSWER.get(language, CANNOT_ANSWER["en"]), False, [])
    chosen = sorted(good[:2], key=lambda item: -item[1])
    text = " ".join(item[2] for item in chosen)
    sources = sorted({item[3] for item in chosen if item[3]})
    return Answer(text, True, sources)


def task_answer(task: str, target: str | None, messages: list[dict[str, Any]]) -> str | None:
    """The copilot's tasks, deterministic: what a model would roughly do with them."""
    last_user = _last_user(messages)
    task = task.casefold()
    if task in ("summarise", "summarize"):
        lines = [line.strip() for line in last_user.splitlines() if line.strip()]
        return "Summary: " + " / ".join(line[:80] for line in lines[-5:]) if lines else "Summary: (empty)"
    if task == "translate":
        return f"[{(target or 'en').lower()}] {last_user.strip()}"
    if task.startswith("rewrite"):
        style = task.partition("-")[2] or "shorter"
        text = last_user.strip()
        if style == "shorter":
            first = split_sentences(text)
            return first[0] if first else text
        if style == "friendlier":
            return f"Hi! {text} 😊"
        if style == "formal":
            return f"Dear customer, {text} Kind regards."
        return text
    return None


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # the array form: [{"type": "text", "text": ...}]
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content(message)
    return ""


def complete(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completion for the request body."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    everything = "\n".join(_content(m) for m in messages)
    system = "\n".join(_content(m) for m in messages if m.get("role") in ("system", "developer"))
    question = _last_user(messages)
    task = TASK_RE.search(system)
    text = task_answer(task.group(1), task.group(2), messages) if task else None
    answer: Answer | None = None
    if text is None:
        contexts = CONTEXT_RE.findall(everything)
        answer = grounded_answer(question, "\n".join(contexts) if contexts else system)
        text = answer.text
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "stop"
    structured = {
        "answer": text,
        "can_answer": answer.can_answer if answer else True,
        "sources": answer.sources if answer else [],
    }
    response_format = (body.get("response_format") or {}).get("type")
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    if tools and body.get("tool_choice") != "none":
        choice = body.get("tool_choice")
        chosen = tools[0]["function"]
        if isinstance(choice, dict) and choice.get("function", {}).get("name"):
            chosen = next(
                (t["function"] for t in tools if t["function"].get("name") == choice["function"]["name"]),
                chosen,
            )
        properties = (chosen.get("parameters") or {}).get("properties") or {}
        arguments = {k: v for k, v in structured.items() if not properties or k in properties}
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_" + uuid.uuid4().hex[:24],
                    "type": "function",
                    "function": {"name": chosen.get("name", "answer"), "arguments": json.dumps(arguments)},
                }
            ],
        }
        finish = "tool_calls"
    elif response_format in ("json_object", "json_schema"):
        message["content"] = json.dumps(structured, ensure_ascii=False)
    prompt_tokens = count_tokens(everything)
    completion_tokens = count_tokens(text)
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or CHAT_MODEL),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def openai_error(status: int, message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class LLMSandbox:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, api_key: str = DEFAULT_KEY) -> None:
        self.lock = threading.Lock()
        self.default_key = api_key
        self.state = LLMSandboxState(api_key=api_key)
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.server.sandbox = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL (what a tenant's LLM base URL is set to)."""
        return f"{self.base}/v1"

    def start(self) -> LLMSandbox:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="llm-sandbox")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- control (also over HTTP under /_sandbox/) ---------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.state = LLMSandboxState(api_key=self.default_key)

    def configure(self, **options: Any) -> None:
        with self.lock:
            for key, value in options.items():
                if key not in ("api_key", "latency"):
                    raise ValueError(f"unknown LLM sandbox option {key}")
                setattr(self.state, key, value)

    def fail(
        self, status: int = 500, *, times: int = 1, retry_after: float | None = None, message: str = ""
    ) -> None:
        """The next `times` requests answer `status` (429 with Retry-After when given)."""
        with self.lock:
            self.state.failures.append(Failure(int(status), int(times), retry_after, message))

    def hang(self, seconds: float, *, times: int = 1) -> None:
        """The next `times` requests wait `seconds` before answering (a client with a shorter timeout
        gives up)."""
        with self.lock:
            self.state.hangs.append([float(seconds), int(times)])

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.state.requests if path in (None, r["path"])]

    # -- behaviour -----------------------------------------------------------------------------------
    def _take(self) -> tuple[Failure | None, float]:
        with self.lock:
            failure = self.state.failures[0] if self.state.failures else None
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self.state.failures.pop(0)
            hang = 0.0
            if self.state.hangs:
                hang = self.state.hangs[0][0]
                self.state.hangs[0][1] -= 1
                if self.state.hangs[0][1] <= 0:
                    self.state.hangs.pop(0)
            return failure, hang + self.state.latency


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LLMSandbox/1"

    @property
    def sandbox(self) -> LLMSandbox:
        return self.server.sandbox  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            return

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _segments(self) -> list[str]:
        return [part for part in urlsplit(self.path).path.split("/") if part]

    def _authorised(self) -> bool:
        given = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if given != self.sandbox.state.api_key:
            self._reply(
                401,
                openai_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
            )
            return False
        return True

    def _served(self, path: str, body: dict[str, Any] | None) -> bool:
        """Record the request and apply the injected latency or failure; False when it was answered."""
        with self.sandbox.lock:
            self.sandbox.state.requests.append({"path": path, "body": body, "at": time.time()})
        failure, wait = self.sandbox._take()
        if wait:
            time.sleep(wait)
        if failure is not None:
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            kind = "rate_limit_exceeded" if failure.status == 429 else "server_error"
            message = failure.message or ("Rate limit reached." if failure.status == 429 else "Server error.")
            self._reply(failure.status, openai_error(failure.status, message, kind, kind), headers)
            return False
        return True

    def do_GET(self) -> None:
        segments = self._segments()
        if segments[:1] == ["_sandbox"]:
            return self.control("GET", segments[1:], {})
        if not self._authorised():
            return None
        if segments == ["v1", "models"]:
            if not self._served("/v1/models", None):
                return None
            return self._reply(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": CHAT_MODEL, "object": "model", "created": 0, "owned_by": "sandbox"},
                        {"id": EMBEDDING_MODEL, "object": "model", "created": 0, "owned_by": "sandbox"},
                    ],
                },
            )
        return self._reply(404, openai_error(404, "Not found.", "invalid_request_error"))

    def do_POST(self) -> None:
        segments = self._segments()
        raw = self._body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._reply(400, openai_error(400, "Invalid JSON.", "invalid_request_error"))
        if not isinstance(body, dict):
            return self._reply(400, openai_error(400, "Expected a JSON object.", "invalid_request_error"))
        if segments[:1] == ["_sandbox"]:
            return self.control("POST", segments[1:], body)
        if not self._authorised():
            return None
        if segments == ["v1", "chat", "completions"]:
            if not isinstance(body.get("messages"), list) or not body["messages"]:
                return self._reply(400, openai_error(400, "'messages' is required.", "invalid_request_error"))
            if not self._served("/v1/chat/completions", body):
                return None
            return self._reply(200, complete(body))
        if segments == ["v1", "embeddings"]:
            given = body.get("input")
            texts = [given] if isinstance(given, str) else given
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                return self._reply(
                    400,
                    openai_error(
                        400, "'input' must be a string or a list of strings.", "invalid_request_error"
                    ),
                )
            if not self._served("/v1/embeddings", body):
                return None
            dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
            tokens = sum(count_tokens(t) for t in texts)
            return self._reply(
                200,
                {
                    "object": "list",
                    "data": [
                        {"object": "embedding", "index": i, "embedding": embed_text(t, dimensions)}
                        for i, t in enumerate(texts)
                    ],
                    "model": str(body.get("model") or EMBEDDING_MODEL),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )
        return self._reply(404, openai_error(404, "Not found.", "invalid_request_error"))

    def control(self, method: str, segments: list[str], data: dict[str, Any]) -> None:
        """GET state | POST reset | POST config | POST fail | POST hang."""
        sandbox = self.sandbox
        action = segments[0] if segments else "state"
        try:
            if method == "GET" and action == "state":
                return self._reply(200, {"requests": sandbox.requests()})
            if method == "POST" and action == "reset":
                sandbox.reset()
            elif method == "POST" and action == "config":
                sandbox.configure(**data)
            elif method == "POST" and action == "fail":
                sandbox.fail(**data)
            elif method == "POST" and action == "hang":
                sandbox.hang(**data)
            else:
                return self._reply(404, {"error": "unknown sandbox action"})
        except (TypeError, ValueError) as exc:
            return self._reply(400, {"error": str(exc)})
        return self._reply(200, {"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible LLM API for development.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LLM_SANDBOX_PORT") or 8002))
    parser.add_argument("--api-key", default=os.environ.get("LLM_SANDBOX_KEY") or DEFAULT_KEY)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args()
    sandbox = LLMSandbox(host=args.host, port=args.port, api_key=args.api_key)
    sandbox.configure(latency=args.latency)
    sandbox.start()
    print(f"LLM sandbox (OpenAI-compatible) on {sandbox.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sandbox.stop()


if __name__ == "__main__":
    main()
