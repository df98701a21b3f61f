"""All Graph API HTTP. Every failure is a GraphError carrying Meta's code, title and a retry class.

One pooled httpx.Client per process (thread-safe), so workers reuse connections to Meta.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings


class RetryClass(enum.StrEnum):
    RETRY = "retry"  # network, 5xx, throttling: retried with backoff
    AUTH = "auth"  # token invalid or missing permission: the number needs re-authorisation
    PERMANENT = "permanent"  # this message cannot be sent: fail it with code and title
    ACCOUNT = "account"  # the account is blocked or restricted: stop the number and alert
    UNCERTAIN = "uncertain"  # the request may have reached Meta: never resent automatically


RETRY_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057})
AUTH_CODES = frozenset({0, 3, 10, 190, 131005, *range(200, 300)})
PERMANENT_CODES = frozenset(
    {100, 131008, 131009, 131021, 131026, 131030, 131047, 131050, 131051, 131053, 130403}
    | set(range(132000, 132017))
)
ACCOUNT_CODES = frozenset({368, 131031, 131042, 131048, 130497, 131064})


def classify(code: int | None, http_status: int | None = None) -> RetryClass:
    if code is not None:
        if code in RETRY_CODES:
            return RetryClass.RETRY
        if code in AUTH_CODES:
            return RetryClass.AUTH
        if code in ACCOUNT_CODES:
            return RetryClass.ACCOUNT
        if code in PERMANENT_CODES:
            return RetryClass.PERMANENT
    if http_status is not None:
        if http_status >= 500 or http_status == 429:
            return RetryClass.RETRY
        if http_status in (401, 403):
            return RetryClass.AUTH
    return RetryClass.PERMANENT


class GraphError(Exception):
    def __init__(
        self,
        *,
        code: int | None,
        title: str,
        details: str = "",
        http_status: int | None = None,
        retry_class: RetryClass | None = None,
    ) -> None:
        super().__init__(f"{code}: {title}")
        self.code = code
        self.title = title
        self.details = details
        self.http_status = http_status
        self.retry_class = retry_class or classify(code, http_status)

    @property
    def retryable(self) -> bool:
        return self.retry_class == RetryClass.RETRY


@dataclass(frozen=True)
class MediaInfo:
    url: str
    mime_type: str
    sha256: str
    file_size: int | None


_http: httpx.Client | None = None
_http_lock = threading.Lock()


def http() -> httpx.Client:
    global _http
    if _http is None:
        with _http_lock:
            if _http is None:
                _http = httpx.Client(
                    timeout=httpx.Timeout(settings.WHATSAPP_HTTP_TIMEOUT, connect=5.0),
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
                )
    return _http


def _error_from_response(response: httpx.Response) -> GraphError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphError(
            code=None,
            title=f"HTTP {response.status_code} from the Graph API",
            http_status=response.status_code,
        )
    data = error.get("error_data") or {}
    details = data.get("details", "") if isinstance(data, dict) else str(data)
    code = error.get("code")
    return GraphError(
        code=int(code) if isinstance(code, int | str) and str(code).isdigit() else None,
        title=str(error.get("error_user_title") or error.get("message") or "Graph API error")[:300],
        details=str(details or error.get("error_user_msg") or ""),
        http_status=response.status_code,
    )


class GraphClient:
    def __init__(self, *, access_token: str, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.WHATSAPP_GRAPH_URL).rstrip("/")
        self.headers = {"Authorization": f"Bearer {access_token}"}

    def _request(self, method: str, path: str, *, sent_means_uncertain: bool = False, **kwargs: Any) -> Any:
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        try:
            response = http().request(method, url, headers=self.headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Meta: safe to try again.
            raise GraphError(
                code=None, title=f"Network error: {type(exc).__name__}", retry_class=RetryClass.RETRY
            ) from exc
        except httpx.HTTPError as exc:
            # The request may have been processed: for sends, a retry could deliver twice.
            retry_class = RetryClass.UNCERTAIN if sent_means_uncertain else RetryClass.RETRY
            raise GraphError(
                code=None, title=f"Network error: {type(exc).__name__}", retry_class=retry_class
            ) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response

    def send_message(self, *, phone_number_id: str, body: dict[str, Any]) -> str:
        """POST /{phone_number_id}/messages; returns the wamid Meta assigned."""
        response = self._request("POST", f"{phone_number_id}/messages", json=body, sent_means_uncertain=True)
        data = response.json()
        try:
            return str(data["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise GraphError(
                code=None,
                title="The Graph API accepted the message without a message id.",
                retry_class=RetryClass.UNCERTAIN,
            ) from exc

    def mark_read(self, *, phone_number_id: str, wamid: str) -> None:
        self._request(
            "POST",
            f"{phone_number_id}/messages",
            json={"messaging_product": "whatsapp", "status": "read", "message_id": wamid},
        )

    def get_media(self, *, media_id: str) -> MediaInfo:
        data = self._request("GET", media_id).json()
        size = data.get("file_size")
        return MediaInfo(
            url=str(data["url"]),
            mime_type=str(data.get("mime_type", "")),
            sha256=str(data.get("sha256", "")),
            file_size=int(size) if size is not None else None,
        )

    def download(self, *, url: str, max_bytes: int) -> bytes:
        """Media URLs need the bearer token and expire after five minutes: fetch right after get_media."""
        chunks: list[bytes] = []
        total = 0
        try:
            with http().stream("GET", url, headers=self.headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from_response(response)
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise GraphError(
                            code=None,
                            title=f"Media is larger than {max_bytes} bytes.",
                            retry_class=RetryClass.PERMANENT,
                        )
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise GraphError(
                code=None, title=f"Network error: {type(exc).__name__}", retry_class=RetryClass.RETRY
            ) from exc
        return b"".join(chunks)

    def upload_media(self, *, phone_number_id: str, content: bytes, mime_type: str, filename: str) -> str:
        response = self._request(
            "POST",
            f"{phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, content, mime_type)},
        )
        return str(response.json()["id"])

    def iter_templates(self, *, waba_id: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every template of the account, following paging.next until the last page."""
        url: str | None = f"{waba_id}/message_templates"
        params: dict[str, Any] | None = {"limit": page_size}
        while url:
            data = self._request("GET", url, params=params).json()
            yield from data.get("data", [])
            url = (data.get("paging") or {}).get("next")
            params = None


def client_for(channel: Any) -> GraphClient:
    return GraphClient(access_token=channel.access_token)
