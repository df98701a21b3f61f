"""All WAHA (WhatsApp HTTP API) HTTP. Every failure is a WahaError carrying the HTTP status, WAHA's message
and a retry class (whatsapp.client.RetryClass: the delivery actors treat both providers' errors alike).

Every request goes through core.fetch (the process's pooled, SSRF-guarded client) and only to the origin
of the session's server URL; `download` too (WAHA's file URLs, /api/files/...), so the API key never
reaches another host. The server URL is entered by an owner (or is the platform-wide WAHA_URL) and is
checked when the number is connected (waha.sessions); here it must be http(s) without credentials, and
core.fetch's rules apply on every request: a private or loopback address (WAHA usually runs beside the
CRM) or a port other than 80/443 is reached only when the operator lists the host in
OUTBOUND_ALLOWED_HOSTS (the platform gateway, the sandbox) or sets OUTBOUND_ALLOW_PRIVATE_NETWORKS.

Retry classes: 5xx, 429 and network failures RETRY; 401/403 AUTH (the key is wrong: the number needs
attention); other 4xx PERMANENT. A send whose request was written before the connection broke or timed
out is UNCERTAIN (WAHA may have sent it: never resent automatically), as is a send answered without a
message id.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from core import crypto
from core.fetch import Fetched, FetchError, FetchRefused, check_url, fetch
from whatsapp.client import RetryClass

# WAHA's JSON answers are small (a session, a sent message).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# Received media: the Cloud API's largest document is 100 MB; WAHA's files are the same WhatsApp media.
DEFAULT_MEDIA_MAX_BYTES = 100 * 1024 * 1024
MEDIA_DOWNLOAD_SECONDS = 600.0
DEFAULT_TIMEOUT = 15.0
# WAHA session names: letters, digits, "_" and "-" (WAHA Core has only "default").
SESSION_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The events a session's webhook subscribes to (waha.inbound maps them).
DEFAULT_EVENTS = (
    "message",
    "message.any",
    "message.ack",
    "message.reaction",
    "message.revoked",
    "message.edited",
    "session.status",
)


def classify(status: int | None) -> RetryClass:
    if status is None or status >= 500 or status == 429:
        return RetryClass.RETRY
    if status in (401, 403):
        return RetryClass.AUTH
    return RetryClass.PERMANENT


class WahaError(Exception):
    """`status` is the HTTP status (None: no answer); `message` is safe to show staff."""

    def __init__(self, status: int | None, message: str, retry_class: RetryClass | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.retry_class = retry_class or classify(status)

    @property
    def retryable(self) -> bool:
        return self.retry_class == RetryClass.RETRY


@dataclass(frozen=True)
class SessionInfo:
    name: str
    status: str  # STARTING, SCAN_QR_CODE, WORKING, FAILED, STOPPED
    me_id: str = ""  # "<digits>@c.us" once linked
    me_name: str = ""
    # When WAHA answered, by its own clock (the response's Date, to the second); None without a usable one.
    at: dt.datetime | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, data: Any, at: dt.datetime | None = None) -> SessionInfo:
        data = data if isinstance(data, dict) else {}
        me = data.get("me") if isinstance(data.get("me"), dict) else {}
        return cls(
            name=str(data.get("name") or "")[:100],
            status=str(data.get("status") or "").upper()[:20],
            me_id=str(me.get("id") or "")[:100],
            me_name=str(me.get("pushName") or "")[:200],
            at=at,
        )


def http_date(value: str | None) -> dt.datetime | None:
    """An HTTP Date header as an aware UTC datetime floored to the second, or None when it is missing or
    not a date."""
    try:
        parsed = parsedate_to_datetime(value or "")
        if parsed.tzinfo is None:  # "-0000": UTC, as every HTTP date is
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC).replace(microsecond=0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def message_id_of(data: Any) -> str:
    """The id of a sent message in WAHA's answer: `id` (a string, or {"_serialized"}), or `key.id`."""
    if isinstance(data, dict):
        ident = data.get("id")
        if isinstance(ident, str) and ident:
            return ident
        if isinstance(ident, dict) and isinstance(ident.get("_serialized"), str) and ident["_serialized"]:
            return str(ident["_serialized"])
        key = data.get("key")
        if isinstance(key, dict) and isinstance(key.get("id"), str) and key["id"]:
            return str(key["id"])
    return ""


def _error_from_response(response: Fetched) -> WahaError:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = ""
    if isinstance(body, dict):
        raw = body.get("message") or body.get("exception") or body.get("error") or ""
        if isinstance(raw, dict):
            raw = raw.get("message") or ""
        if isinstance(raw, list):
            raw = "; ".join(str(item) for item in raw)
        message = str(raw)
    message = " ".join(message.split())[:300] or f"HTTP {response.status_code} from the WAHA server"
    return WahaError(response.status_code, message)


def _json(response: Fetched) -> Any:
    """The answer's JSON; {} when it has no body or is not JSON."""
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        return {}


def _fetch_error(exc: FetchError, *, sent_means_uncertain: bool, what: str) -> WahaError:
    if isinstance(exc, FetchRefused) or exc.code == "too_large":
        return WahaError(None, f"{what} refused: {exc.message}", RetryClass.PERMANENT)
    if exc.sent and sent_means_uncertain:
        # The request was written: WAHA may have sent the message. Never resent automatically.
        return WahaError(None, f"{what}: the outcome is unknown ({exc.message})", RetryClass.UNCERTAIN)
    return WahaError(None, f"{what}: {exc.message}", RetryClass.RETRY)


def server_origin(server_url: str) -> str:
    """`scheme://host[:port]` of a WAHA server URL; WahaError (permanent) unless it is http(s)."""
    try:
        parsed = check_url(server_url)
    except FetchRefused as exc:
        raise WahaError(None, f"Not a usable WAHA server URL: {exc.message}", RetryClass.PERMANENT) from exc
    port = f":{parsed.port}" if parsed.port else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}"


class WahaClient:
    def __init__(self, server_url: str, api_key: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.origin = server_origin(server_url)
        # A WAHA behind a reverse proxy under a path prefix (https://example.com/waha) keeps the prefix.
        path = httpx.URL(server_url).path.rstrip("/")
        self.base_url = f"{self.origin}{path}"
        # No key, no header (a server without authentication); never someone else's key (see `gateway`).
        self.headers = {"Accept": "application/json", **({"X-Api-Key": api_key} if api_key else {})}
        self.timeout = timeout

    # -- plumbing ----------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return _json(self._response(method, path, **kwargs))

    def _response(
        self, method: str, path: str, *, sent_means_uncertain: bool = False, what: str = "", **kwargs: Any
    ) -> Fetched:
        what = what or f"WAHA {method} {path.split('?')[0]}"
        try:
            response = fetch(
                method,
                f"{self.base_url}{path}",
                headers=self.headers,
                allowed_hosts=[self.origin],
                max_bytes=MAX_RESPONSE_BYTES,
                timeout=self.timeout,
                total_timeout=max(60.0, self.timeout * 4),
                **kwargs,
            )
        except FetchError as exc:
            raise _fetch_error(exc, sent_means_uncertain=sent_means_uncertain, what=what) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        if response.status_code >= 300:
            raise WahaError(response.status_code, f"Unexpected redirect from the WAHA server ({what})")
        return response

    def _session_call(self, method: str, path: str, **kwargs: Any) -> SessionInfo:
        """A session as WAHA answered it, with the answer's time on WAHA's clock (its Date header): WAHA's
        session.status events carry that clock's timestamps, ours may differ (waha.sessions.record_status)."""
        response = self._response(method, path, **kwargs)
        return SessionInfo.from_json(_json(response), at=http_date(response.headers.get("date")))

    @staticmethod
    def _name(name: str) -> str:
        if not isinstance(name, str) or not SESSION_NAME_RE.fullmatch(name):
            raise WahaError(
                None,
                "Not a WAHA session name (letters, digits, '_' and '-', at most 64).",
                RetryClass.PERMANENT,
            )
        return quote(name, safe="")

    def _send(self, path: str, body: dict[str, Any]) -> str:
        data = self._request("POST", path, json=body, sent_means_uncertain=True, what="Sending through WAHA")
        message_id = message_id_of(data)
        if not message_id:
            raise WahaError(None, "WAHA accepted the message without a message id.", RetryClass.UNCERTAIN)
        return message_id

    # -- sessions ----------------------------------------------------------------------------------------

    @staticmethod
    def session_config(webhook_url: str, webhook_key: str, events: Any = None) -> dict[str, Any]:
        return {
            "webhooks": [
                {
                    "url": webhook_url,
                    "events": list(events or DEFAULT_EVENTS),
                    "hmac": {"key": webhook_key},
                    "retries": {"policy": "exponential", "delaySeconds": 2, "attempts": 5},
                }
            ]
        }

    def create_session(
        self, name: str, webhook_url: str, webhook_key: str, events: Any = None, start: bool = True
    ) -> SessionInfo:
        """POST /api/sessions (422 when the name exists: see update_session_config)."""
        body = {
            "name": name,
            "start": start,
            "config": self.session_config(webhook_url, webhook_key, events),
        }
        self._name(name)
        return self._session_call("POST", "/api/sessions", json=body)

    def update_session_config(
        self, name: str, webhook_url: str, webhook_key: str, events: Any = None
    ) -> SessionInfo:
        """PUT /api/sessions/{name}: the webhook (URL, events, HMAC key) of an existing session."""
        body = {"config": self.session_config(webhook_url, webhook_key, events)}
        return self._session_call("PUT", f"/api/sessions/{self._name(name)}", json=body)

    def get_session(self, name: str) -> SessionInfo:
        return self._session_call("GET", f"/api/sessions/{self._name(name)}")

    def _session_action(self, name: str, action: str) -> SessionInfo:
        return self._session_call("POST", f"/api/sessions/{self._name(name)}/{action}")

    def start_session(self, name: str) -> SessionInfo:
        return self._session_action(name, "start")

    def stop_session(self, name: str) -> SessionInfo:
        return self._session_action(name, "stop")

    def restart_session(self, name: str) -> SessionInfo:
        return self._session_action(name, "restart")

    def logout_session(self, name: str) -> SessionInfo:
        return self._session_action(name, "logout")

    def delete_session(self, name: str) -> None:
        self._request("DELETE", f"/api/sessions/{self._name(name)}")

    def get_qr(self, name: str) -> str:
        """The QR code's text (we render it with segno); 422 unless the session is SCAN_QR_CODE."""
        data = self._request("GET", f"/api/{self._name(name)}/auth/qr", params={"format": "raw"})
        value = data.get("value") if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise WahaError(None, "WAHA gave no QR code.", RetryClass.RETRY)
        return value

    # -- sending (each returns WAHA's id of the sent message) --------------------------------------------

    def send_text(self, session: str, chat_id: str, text: str, reply_to: str | None = None) -> str:
        body: dict[str, Any] = {"session": self._name(session), "chatId": chat_id, "text": text}
        if reply_to:
            body["reply_to"] = reply_to
        return self._send("/api/sendText", body)

    def _send_file(
        self, path: str, session: str, chat_id: str, file: dict[str, Any], caption: str | None
    ) -> str:
        body: dict[str, Any] = {"session": self._name(session), "chatId": chat_id, "file": file}
        if caption:
            body["caption"] = caption
        return self._send(path, body)

    def send_image(self, session: str, chat_id: str, file: dict[str, Any], caption: str | None = None) -> str:
        """`file`: {"mimetype", "filename", "data" (base64)} or {"mimetype", "filename", "url"}."""
        return self._send_file("/api/sendImage", session, chat_id, file, caption)

    def send_file(self, session: str, chat_id: str, file: dict[str, Any], caption: str | None = None) -> str:
        return self._send_file("/api/sendFile", session, chat_id, file, caption)

    def send_voice(self, session: str, chat_id: str, file: dict[str, Any], caption: str | None = None) -> str:
        """A voice note; WAHA converts the audio to opus (`convert`). WhatsApp shows no caption on voice."""
        body: dict[str, Any] = {
            "session": self._name(session),
            "chatId": chat_id,
            "file": file,
            "convert": True,
        }
        return self._send("/api/sendVoice", body)

    def send_location(
        self, session: str, chat_id: str, latitude: float, longitude: float, title: str | None = None
    ) -> str:
        body: dict[str, Any] = {
            "session": self._name(session),
            "chatId": chat_id,
            "latitude": latitude,
            "longitude": longitude,
        }
        if title:
            body["title"] = title
        return self._send("/api/sendLocation", body)

    def react(self, session: str, message_id: str, reaction: str) -> None:
        """An emoji on a message ("" removes ours). Repeating it is harmless: not an uncertain send."""
        body = {"session": self._name(session), "messageId": message_id, "reaction": reaction}
        self._request("PUT", "/api/reaction", json=body)

    def send_seen(self, session: str, chat_id: str, message_ids: list[str]) -> None:
        body = {"session": self._name(session), "chatId": chat_id, "messageIds": list(message_ids)}
        self._request("POST", "/api/sendSeen", json=body)

    def start_typing(self, session: str, chat_id: str) -> None:
        self._request("POST", "/api/startTyping", json={"session": self._name(session), "chatId": chat_id})

    def stop_typing(self, session: str, chat_id: str) -> None:
        self._request("POST", "/api/stopTyping", json={"session": self._name(session), "chatId": chat_id})

    # -- media -------------------------------------------------------------------------------------------

    def download(self, url: str, max_bytes: int = DEFAULT_MEDIA_MAX_BYTES) -> tuple[bytes, str]:
        """A received file (payload.media.url) with the API key: only from this server's own origin
        (anything else is refused before a request is made), redirects within that origin only.
        Returns the bytes and the MIME type the server declared."""
        try:
            response = fetch(
                "GET",
                url,
                headers=self.headers,
                allowed_hosts=[self.origin],
                max_bytes=max_bytes,
                timeout=self.timeout,
                total_timeout=MEDIA_DOWNLOAD_SECONDS,
                max_redirects=3,
            )
        except FetchError as exc:
            if exc.code == "too_large":
                raise WahaError(
                    None, f"The file is larger than {max_bytes} bytes.", RetryClass.PERMANENT
                ) from exc
            raise _fetch_error(exc, sent_means_uncertain=False, what="Media download from WAHA") from exc
        if response.status_code >= 300:
            raise _error_from_response(response)
        mime_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        return response.content, mime_type


def is_platform_server(url: str) -> bool:
    """Whether `url` is the platform-wide WAHA server (settings.WAHA_URL)."""
    platform = getattr(settings, "WAHA_URL", "")
    return bool(platform) and url.rstrip("/") == platform.rstrip("/")


def gateway(waha_session: Any) -> tuple[str, str]:
    """The server URL and API key a number's session is reached with: its own, or (left blank) the
    platform's WAHA_URL. The platform's WAHA_API_KEY goes to the platform's server only, never to a
    server a tenant entered."""
    url = waha_session.server_url or getattr(settings, "WAHA_URL", "")
    key = crypto.decrypt(waha_session.api_key_encrypted) if waha_session.api_key_encrypted else ""
    if not key and is_platform_server(url):
        key = getattr(settings, "WAHA_API_KEY", "")
    return url, key


def client_for(waha_session: Any) -> WahaClient:
    """The client of a number's WAHA session (see `gateway`)."""
    url, key = gateway(waha_session)
    return WahaClient(url, key, timeout=getattr(settings, "WAHA_HTTP_TIMEOUT", DEFAULT_TIMEOUT))
