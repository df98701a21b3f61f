"""All Graph API HTTP. Every failure is a GraphError carrying Meta's code, title and a retry class.

Every request goes through core.fetch (a pooled, SSRF-guarded client per thread): Graph API calls only
to the WHATSAPP_GRAPH_URL origin, media downloads only from Meta's media hosts (WHATSAPP_MEDIA_HOSTS) or
that origin, so the access token never reaches any other host.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from core.fetch import Fetched, FetchError, FetchRefused, fetch
from whatsapp import crypto


class RetryClass(enum.StrEnum):
    RETRY = "retry"  # network, 5xx, throttling: retried with backoff
    AUTH = "auth"  # token invalid or missing permission: the number needs re-authorisation
    PERMANENT = "permanent"  # this message cannot be sent: fail it with code and title
    ACCOUNT = "account"  # the account is blocked or restricted: stop the number and alert
    UNCERTAIN = "uncertain"  # the request may have reached Meta: never resent automatically


RETRY_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057})
AUTH_CODES = frozenset({0, 3, 10, 190, 131005, *range(200, 300)})
PERMANENT_CODES = frozenset(
    {100, 131008, 131009, 131021, 131049, 131026, 131030, 131047, 131050, 131051, 131053, 130403}
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


# Graph object ids (media, phone numbers, accounts) are decimal numbers; anything else in a payload that
# should hold one (a URL, a path) is refused before it can become part of a request.
GRAPH_ID_RE = re.compile(r"[0-9]{1,32}")
# One segment of a Graph API path: an id or an edge name. No dots, slashes, colons or percent signs.
_PATH_SEGMENT_RE = re.compile(r"[A-Za-z0-9_]{1,128}")
# Graph API JSON answers are small; a template page of 100 is well under this.
GRAPH_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# A 100 MB document over a slow link: the whole download, not each read (WHATSAPP_HTTP_TIMEOUT bounds those).
MEDIA_DOWNLOAD_SECONDS = 600.0
# Redirects of a media download are followed within the same origin only (core.fetch refuses the others).
MEDIA_MAX_REDIRECTS = 3


def is_graph_id(value: object) -> bool:
    return isinstance(value, str) and GRAPH_ID_RE.fullmatch(value) is not None


def _error_from_response(response: httpx.Response | Fetched) -> GraphError:
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
        # No token: the OAuth code exchange (exchange_signup_code), which authenticates by app secret.
        self.headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}

    def _request(self, method: str, path: str, *, sent_means_uncertain: bool = False, **kwargs: Any) -> Any:
        """`path` is ids and edge names (`{phone_number_id}/messages`) joined under WHATSAPP_GRAPH_URL; never
        a URL, and query parameters go in `params`. kwargs: params, json, data, files, content.
        Returns a core.fetch.Fetched (status_code, headers, content, json())."""
        segments = path.strip("/").split("/")
        if not all(_PATH_SEGMENT_RE.fullmatch(segment) for segment in segments):
            raise GraphError(
                code=None,
                title="Refused: not a Graph API path (ids and edge names only).",
                details=path[:200],
                retry_class=RetryClass.PERMANENT,
            )
        url = f"{self.base_url}/{'/'.join(quote(segment, safe='') for segment in segments)}"
        try:
            response = fetch(
                method,
                url,
                headers=self.headers,
                allowed_hosts=[self.base_url],  # this origin only
                max_bytes=GRAPH_MAX_RESPONSE_BYTES,
                timeout=settings.WHATSAPP_HTTP_TIMEOUT,
                **kwargs,
            )
        except FetchError as exc:
            raise _fetch_error(exc, sent_means_uncertain=sent_means_uncertain) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response

    def send_message(self, *, phone_number_id: str, body: dict[str, Any], marketing: bool = False) -> str:
        """POST /{phone_number_id}/messages (or /marketing_messages, Meta's Marketing Messages API, for a
        MARKETING template from an onboarded number: same body); returns the wamid Meta assigned."""
        edge = "marketing_messages" if marketing else "messages"
        response = self._request("POST", f"{phone_number_id}/{edge}", json=body, sent_means_uncertain=True)
        data = response.json()
        try:
            return str(data["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise GraphError(
                code=None,
                title="The Graph API accepted the message without a message id.",
                retry_class=RetryClass.UNCERTAIN,
            ) from exc

    def mark_read(self, *, phone_number_id: str, wamid: str, typing: bool = False) -> None:
        """Blue ticks up to this message; with `typing`, also "typing…" on the customer's phone (Meta
        shows it until the reply arrives or for 25 s, and only with a read)."""
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        self._request("POST", f"{phone_number_id}/messages", json=body)

    def get_media(self, *, media_id: str) -> MediaInfo:
        if not is_graph_id(media_id):
            raise GraphError(
                code=None,
                title="Not a WhatsApp media id (digits only): nothing was fetched.",
                retry_class=RetryClass.PERMANENT,
            )
        data = self._request("GET", media_id).json()
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            raise GraphError(
                code=None,
                title="The Graph API gave no download URL for the media.",
                retry_class=RetryClass.RETRY,
            )
        size = data.get("file_size")
        return MediaInfo(
            url=data["url"],
            mime_type=str(data.get("mime_type", "")),
            sha256=str(data.get("sha256", "")),
            file_size=int(size) if size is not None else None,
        )

    def download(self, *, url: str, max_bytes: int) -> bytes:
        """Media URLs need the bearer token and expire after five minutes: fetch right after get_media.

        The URL comes from the Graph API, but the token goes only to Meta's media hosts over https
        (WHATSAPP_MEDIA_HOSTS) or back to the Graph API's own origin; redirects stay within the origin."""
        try:
            response = fetch(
                "GET",
                url,
                headers=self.headers,
                allowed_hosts=[self.base_url, *settings.WHATSAPP_MEDIA_HOSTS],
                https_only=True,  # http only for operator-configured hosts (the sandbox)
                max_bytes=max_bytes,
                timeout=settings.WHATSAPP_HTTP_TIMEOUT,
                total_timeout=MEDIA_DOWNLOAD_SECONDS,
                max_redirects=MEDIA_MAX_REDIRECTS,
            )
        except FetchError as exc:
            if exc.code == "too_large":
                raise GraphError(
                    code=None,
                    title=f"Media is larger than {max_bytes} bytes.",
                    retry_class=RetryClass.PERMANENT,
                ) from exc
            raise _fetch_error(exc, what="Media download") from exc
        if response.status_code >= 300:
            raise _error_from_response(response)
        return response.content

    def upload_media(self, *, phone_number_id: str, content: bytes, mime_type: str, filename: str) -> str:
        response = self._request(
            "POST",
            f"{phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, content, mime_type)},
        )
        media_id = str((response.json() or {}).get("id") or "")
        if not is_graph_id(media_id):
            raise GraphError(
                code=None,
                title="The Graph API answered the upload without a media id.",
                retry_class=RetryClass.RETRY,
            )
        return media_id

    def iter_templates(self, *, waba_id: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every template of the account, page by page while Meta gives a next page. The next page is asked
        for by its `after` cursor, not by fetching the paging.next URL: only our own paths are requested."""
        params: dict[str, Any] = {"limit": page_size}
        while True:
            data = self._request("GET", f"{waba_id}/message_templates", params=params).json()
            yield from data.get("data", [])
            paging = data.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return
            params = {"limit": page_size, "after": after}

    def create_template(self, *, waba_id: str, body: dict[str, Any]) -> CreatedTemplate:
        """POST /{waba_id}/message_templates: submitted for review; Meta answers its id, status (PENDING,
        or APPROVED/REJECTED at once) and the category it assigned."""
        data = self._request("POST", f"{waba_id}/message_templates", json=body).json()
        data = data if isinstance(data, dict) else {}
        template_id = str(data.get("id") or "")
        if not is_graph_id(template_id):
            raise GraphError(
                code=None,
                title="The Graph API accepted the template without a template id.",
                retry_class=RetryClass.UNCERTAIN,
            )
        return CreatedTemplate(
            id=template_id,
            status=str(data.get("status") or "PENDING")[:30].upper(),
            category=str(data.get("category") or "")[:30].upper(),
        )

    def delete_template(self, *, waba_id: str, name: str, template_id: str = "") -> None:
        """DELETE /{waba_id}/message_templates?name=…[&hsm_id=…]: with the id, only that language."""
        params = {"name": name}
        if is_graph_id(template_id):
            params["hsm_id"] = template_id
        self._request("DELETE", f"{waba_id}/message_templates", params=params)

    # -- reads that prove a number belongs to an account (whatsapp.services.verify_number) -------------

    def get_phone_number(self, *, phone_number_id: str) -> PhoneNumber:
        """GET /{phone_number_id}: Meta answers code 100 unless the token may read the number."""
        data = self._request(
            "GET", phone_number_id, params={"fields": "id,display_phone_number,verified_name,quality_rating"}
        ).json()
        return PhoneNumber.from_graph(data if isinstance(data, dict) else {})

    def iter_phone_numbers(self, *, waba_id: str, page_size: int = 100) -> Iterator[PhoneNumber]:
        """GET /{waba_id}/phone_numbers, page by page by the `after` cursor (as iter_templates)."""
        params: dict[str, Any] = {"limit": page_size}
        while True:
            data = self._request("GET", f"{waba_id}/phone_numbers", params=params).json()
            data = data if isinstance(data, dict) else {}
            for item in data.get("data") or []:
                if isinstance(item, dict):
                    yield PhoneNumber.from_graph(item)
            paging: dict[str, Any] = data["paging"] if isinstance(data.get("paging"), dict) else {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return
            params = {"limit": page_size, "after": after}

    # -- Embedded Signup and number management (whatsapp.services.embedded_signup, .numbers) -------------

    def exchange_signup_code(self, *, code: str, app_id: str, app_secret: str) -> str:
        """GET /oauth/access_token: the code Embedded Signup returned → a business integration token for
        the accounts the customer shared. Sent without a bearer token (the app secret authenticates)."""
        data = self._request(
            "GET",
            "oauth/access_token",
            params={"client_id": app_id, "client_secret": app_secret, "code": code},
        ).json()
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise GraphError(
                code=None,
                title="The Graph API exchanged the code without an access token.",
                retry_class=RetryClass.PERMANENT,
            )
        return token

    def get_number_details(self, *, phone_number_id: str) -> NumberDetails:
        """GET /{phone_number_id} with what the numbers page shows (quality, throughput, name status,
        the messaging limit Meta sets per business portfolio)."""
        data = self._request("GET", phone_number_id, params={"fields": NUMBER_DETAIL_FIELDS}).json()
        return NumberDetails.from_graph(data if isinstance(data, dict) else {})

    def get_account(self, *, waba_id: str) -> dict[str, Any]:
        """GET /{waba_id}: the WhatsApp Business Account's name and settings."""
        data = self._request("GET", waba_id, params={"fields": "id,name,currency,timezone_id"}).json()
        return data if isinstance(data, dict) else {}

    def subscribe_app(self, *, waba_id: str) -> None:
        """POST /{waba_id}/subscribed_apps: the account's webhooks go to the app the token belongs to."""
        self._request("POST", f"{waba_id}/subscribed_apps")

    def register_number(self, *, phone_number_id: str, pin: str) -> None:
        """POST /{phone_number_id}/register: the number is usable on the Cloud API; `pin` becomes its
        two-step verification PIN (six digits)."""
        self._request(
            "POST", f"{phone_number_id}/register", json={"messaging_product": "whatsapp", "pin": pin}
        )

    def sandbox_send_test_webhook(self, *, phone_number_id: str, waba_id: str) -> bool:
        """The sandbox only (Meta has no such call; its App Dashboard has a "Test" button): post a signed
        test webhook for the number to the sandbox's webhook URL. True when it was posted."""
        data = self._request(
            "POST",
            "_sandbox/test_webhook",
            json={"phone_number_id": phone_number_id, "waba_id": waba_id},
        ).json()
        return bool(isinstance(data, dict) and data.get("delivered"))


NUMBER_DETAIL_FIELDS = (
    "id,display_phone_number,verified_name,quality_rating,throughput,name_status,status,"
    "messaging_limit_tier,whatsapp_business_manager_messaging_limit,platform_type"
)


@dataclass(frozen=True)
class NumberDetails:
    id: str
    display_phone_number: str = ""
    verified_name: str = ""
    quality_rating: str = ""
    throughput: str = ""
    name_status: str = ""
    status: str = ""
    messaging_limit: str = ""

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> NumberDetails:
        throughput = data.get("throughput")
        limit = data.get("whatsapp_business_manager_messaging_limit") or data.get("messaging_limit_tier")
        return cls(
            id=str(data.get("id") or ""),
            display_phone_number=str(data.get("display_phone_number") or "")[:32],
            verified_name=str(data.get("verified_name") or "")[:100],
            quality_rating=str(data.get("quality_rating") or "")[:20].upper(),
            throughput=str(throughput.get("level") or "")[:30] if isinstance(throughput, dict) else "",
            name_status=str(data.get("name_status") or "")[:40],
            status=str(data.get("status") or "")[:40],
            messaging_limit=str(limit or "")[:40],
        )


def _fetch_error(
    exc: FetchError, *, sent_means_uncertain: bool = False, what: str = "Graph API request"
) -> GraphError:
    if isinstance(exc, FetchRefused) or exc.code == "too_large":
        # Refused by policy, or an answer no retry will shrink: retrying cannot help.
        return GraphError(code=None, title=f"{what} refused: {exc.message}", retry_class=RetryClass.PERMANENT)
    if not exc.sent:
        retry_class = RetryClass.RETRY  # nothing reached Meta: safe to try again
    else:
        # The request may have been processed: for sends, a retry could deliver twice.
        retry_class = RetryClass.UNCERTAIN if sent_means_uncertain else RetryClass.RETRY
    return GraphError(code=None, title=f"Network error: {exc.message}", retry_class=retry_class)


@dataclass(frozen=True)
class CreatedTemplate:
    id: str
    status: str
    category: str


@dataclass(frozen=True)
class PhoneNumber:
    id: str
    display_phone_number: str = ""
    verified_name: str = ""
    quality_rating: str = ""

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> PhoneNumber:
        return cls(
            id=str(data.get("id") or ""),
            display_phone_number=str(data.get("display_phone_number") or ""),
            verified_name=str(data.get("verified_name") or ""),
            quality_rating=str(data.get("quality_rating") or ""),
        )


def client_for(channel: Any) -> GraphClient:
    return GraphClient(access_token=crypto.decrypt(channel.access_token_encrypted))
