"""Meta's rules for a new message template, checked before it is submitted (pure: no I/O, no Django).

`check_draft(draft)` returns every problem as (field, code, message): the page shows each next to its
field, the API answers them all at once (400 `invalid_template`). `components_of(draft)` builds the
`components` Meta's `POST /{waba_id}/message_templates` takes, for a draft with no problems.

A draft is a plain dict (the API's JSON, or the page's form turned into the same shape):

    {"name", "language", "category": "MARKETING" | "UTILITY" | "AUTHENTICATION",
     "header": {"format": "NONE" | "TEXT" | "IMAGE" | "VIDEO" | "DOCUMENT", "text", "example", "media"},
     "body": str, "body_examples": [str, ...] (positional) or {name: str} (named),
     "footer": str,
     "buttons": [{"type": "QUICK_REPLY", "text"}, {"type": "URL", "text", "url", "example"},
                 {"type": "PHONE_NUMBER", "text", "phone_number"}, {"type": "COPY_CODE", "example"}],
     # AUTHENTICATION only: Meta's fixed shape (its own body text, a copy-code button)
     "add_security_recommendation": bool, "code_expiration_minutes": int | None, "otp_button_text": str}

Limits from Meta's template reference (components, buttons, authentication templates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import phonenumbers

NAME_RE = re.compile(r"[a-z0-9_]+")
NAME_MAX = 512
HEADER_TEXT_MAX = 60
BODY_MAX = 1024
FOOTER_MAX = 60
BUTTON_TEXT_MAX = 25
URL_MAX = 2000
COPY_CODE_EXAMPLE_MAX = 15
EXAMPLE_MAX = 200
MAX_BUTTONS = 10
MAX_QUICK_REPLIES = 10
MAX_URL_BUTTONS = 2
MAX_PHONE_BUTTONS = 1
MAX_COPY_CODE_BUTTONS = 1
CODE_EXPIRATION_RANGE = (1, 90)

CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
HEADER_FORMATS = ("NONE", "TEXT", "IMAGE", "VIDEO", "DOCUMENT")
BUTTON_TYPES = ("QUICK_REPLY", "URL", "PHONE_NUMBER", "COPY_CODE")

# Meta's supported template languages (locale codes as the templates API writes them).
LANGUAGES: dict[str, str] = {
    "af": "Afrikaans", "sq": "Albanian", "ar": "Arabic", "ar_EG": "Arabic (Egypt)",
    "ar_AE": "Arabic (UAE)", "ar_LB": "Arabic (Lebanon)", "ar_MA": "Arabic (Morocco)",
    "ar_QA": "Arabic (Qatar)", "az": "Azerbaijani", "be_BY": "Belarusian", "bn": "Bengali",
    "bn_IN": "Bengali (India)", "bg": "Bulgarian", "ca": "Catalan", "zh_CN": "Chinese (China)",
    "zh_HK": "Chinese (Hong Kong)", "zh_TW": "Chinese (Taiwan)", "hr": "Croatian", "cs": "Czech",
    "da": "Danish", "prs_AF": "Dari", "nl": "Dutch", "nl_BE": "Dutch (Belgium)", "en": "English",
    "en_GB": "English (UK)", "en_US": "English (US)", "en_AE": "English (UAE)",
    "en_AU": "English (Australia)",
    "en_CA": "English (Canada)", "en_GH": "English (Ghana)", "en_IE": "English (Ireland)",
    "en_IN": "English (India)", "en_JM": "English (Jamaica)", "en_MY": "English (Malaysia)",
    "en_NZ": "English (New Zealand)", "en_QA": "English (Qatar)", "en_SG": "English (Singapore)",
    "en_UG": "English (Uganda)", "en_ZA": "English (South Africa)", "et": "Estonian", "fil": "Filipino",
    "fi": "Finnish", "fr": "French", "fr_BE": "French (Belgium)", "fr_CA": "French (Canada)",
    "fr_CH": "French (Switzerland)", "fr_CI": "French (Côte d'Ivoire)", "fr_MA": "French (Morocco)",
    "ka": "Georgian", "de": "German", "de_AT": "German (Austria)", "de_CH": "German (Switzerland)",
    "el": "Greek", "gu": "Gujarati", "ha": "Hausa", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "ga": "Irish", "it": "Italian", "ja": "Japanese", "kn": "Kannada", "kk": "Kazakh",
    "rw_RW": "Kinyarwanda", "ko": "Korean", "ky_KG": "Kyrgyz", "lo": "Lao", "lv": "Latvian",
    "lt": "Lithuanian", "mk": "Macedonian", "ms": "Malay", "ml": "Malayalam", "mr": "Marathi",
    "nb": "Norwegian", "ps_AF": "Pashto", "fa": "Persian", "pl": "Polish", "pt_BR": "Portuguese (Brazil)",
    "pt_PT": "Portuguese (Portugal)", "pa": "Punjabi", "ro": "Romanian", "ru": "Russian", "sr": "Serbian",
    "si_LK": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "es": "Spanish", "es_AR": "Spanish (Argentina)",
    "es_CL": "Spanish (Chile)", "es_CO": "Spanish (Colombia)", "es_CR": "Spanish (Costa Rica)",
    "es_DO": "Spanish (Dominican Republic)", "es_EC": "Spanish (Ecuador)", "es_HN": "Spanish (Honduras)",
    "es_MX": "Spanish (Mexico)", "es_PA": "Spanish (Panama)", "es_PE": "Spanish (Peru)",
    "es_ES": "Spanish (Spain)", "es_UY": "Spanish (Uruguay)", "sw": "Swahili", "sv": "Swedish",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu",
    "uz": "Uzbek", "vi": "Vietnamese", "zu": "Zulu",
}  # fmt: skip

# Any {{...}}: what is inside decides whether it is a valid variable.
ANY_VARIABLE_RE = re.compile(r"\{\{(.*?)\}\}")
POSITIONAL_RE = re.compile(r"[1-9][0-9]{0,2}")
NAMED_RE = re.compile(r"[a-z][a-z0-9_]{0,59}")
MEDIA_HANDLE_RE = re.compile(r"[A-Za-z0-9:_\-+/=.]{1,4096}")


@dataclass(frozen=True)
class Problem:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _variables(text: str) -> list[str]:
    return [inner.strip() for inner in ANY_VARIABLE_RE.findall(text)]


def variable_format(draft: dict[str, Any]) -> str:
    """NAMED when the body or header uses {{name}} variables, else POSITIONAL."""
    header = draft.get("header") if isinstance(draft.get("header"), dict) else {}
    names = _variables(_text(draft.get("body"))) + _variables(_text((header or {}).get("text")))
    return "NAMED" if any(NAMED_RE.fullmatch(name) for name in names) else "POSITIONAL"


def check_draft(draft: Any) -> list[Problem]:
    """Every rule the draft breaks, in the order of the form's fields."""
    if not isinstance(draft, dict):
        return [Problem("template", "not_an_object", "Send the template as a JSON object.")]
    problems: list[Problem] = []
    _check_identity(draft, problems)
    category = _text(draft.get("category")).upper()
    if category == "AUTHENTICATION":
        _check_authentication(draft, problems)
        return problems
    fmt = variable_format(draft)
    _check_header(draft, fmt, problems)
    _check_body(draft, fmt, problems)
    _check_footer(draft, problems)
    _check_buttons(draft, problems)
    return problems


def _check_identity(draft: dict[str, Any], problems: list[Problem]) -> None:
    name = _text(draft.get("name"))
    if not name:
        problems.append(Problem("name", "required", "Give the template a name."))
    elif len(name) > NAME_MAX:
        problems.append(Problem("name", "too_long", f"The name is longer than {NAME_MAX} characters."))
    elif not NAME_RE.fullmatch(name):
        problems.append(
            Problem(
                "name",
                "invalid_name",
                "Use only lowercase letters (a-z), digits and underscores in the name.",
            )
        )
    language = _text(draft.get("language"))
    if language not in LANGUAGES:
        problems.append(
            Problem("language", "unknown_language", "Choose one of Meta's template languages (e.g. en_US).")
        )
    if _text(draft.get("category")).upper() not in CATEGORIES:
        problems.append(
            Problem("category", "unknown_category", "Choose MARKETING, UTILITY or AUTHENTICATION.")
        )


def _check_variables(
    text: str,
    fmt: str,
    where: str,
    problems: list[Problem],
    *,
    max_count: int | None = None,
    edges: bool = True,
) -> list[str]:
    """The variables of `text` if they are well formed, else [] after recording what is wrong."""
    names = _variables(text)
    if not names:
        if "{{" in text or "}}" in text:
            problems.append(
                Problem(where, "invalid_variable", "Write variables as {{1}} or {{name}}, braces balanced.")
            )
        return []
    if "{{" in ANY_VARIABLE_RE.sub("", text) or "}}" in ANY_VARIABLE_RE.sub("", text):
        problems.append(
            Problem(where, "invalid_variable", "Write variables as {{1}} or {{name}}, braces balanced.")
        )
        return []
    positional = [n for n in names if POSITIONAL_RE.fullmatch(n)]
    named = [n for n in names if NAMED_RE.fullmatch(n)]
    if len(positional) + len(named) != len(names):
        problems.append(
            Problem(
                where,
                "invalid_variable",
                "A variable is {{1}}, {{2}}, … or a name of lowercase letters, digits and underscores "
                "such as {{first_name}}.",
            )
        )
        return []
    if positional and named:
        problems.append(
            Problem(
                where,
                "mixed_variable_formats",
                "Use either numbered variables ({{1}}) or named ones ({{first_name}}), not both.",
            )
        )
        return []
    if (fmt == "NAMED") != bool(named):
        problems.append(
            Problem(
                where,
                "mixed_variable_formats",
                "The header and body must use the same kind of variables (numbered or named).",
            )
        )
        return []
    unique = list(dict.fromkeys(names))
    if max_count is not None and len(names) > max_count:
        problems.append(Problem(where, "too_many_variables", f"Use at most {max_count} variable here."))
        return []
    if positional:
        expected = [str(i) for i in range(1, len(unique) + 1)]
        if unique != expected:
            problems.append(
                Problem(
                    where,
                    "variables_not_sequential",
                    "Number the variables in order, starting from {{1}}: {{1}}, {{2}}, {{3}} and so on.",
                )
            )
            return []
    stripped = text.strip()
    if edges and (stripped.startswith("{{") or stripped.endswith("}}")):
        problems.append(
            Problem(
                where,
                "variable_at_edge",
                "The text cannot start or end with a variable: add words before and after it.",
            )
        )
    if re.search(r"\}\}\s*\{\{", text):
        problems.append(
            Problem(
                where,
                "adjacent_variables",
                "Two variables are next to each other: put words between them.",
            )
        )
    return unique


def _examples(raw: Any, names: list[str], fmt: str) -> dict[str, str]:
    """The examples given for `names`, by name ("1", "2" for positional)."""
    if fmt == "POSITIONAL" and isinstance(raw, list):
        return {str(i + 1): _text(v).strip() for i, v in enumerate(raw)}
    if isinstance(raw, dict):
        return {str(k): _text(v).strip() for k, v in raw.items()}
    if isinstance(raw, str) and names:
        return {names[0]: raw.strip()}
    return {}


def _check_examples(raw: Any, names: list[str], fmt: str, where: str, problems: list[Problem]) -> None:
    given = _examples(raw, names, fmt)
    missing = [n for n in names if not given.get(n)]
    if missing:
        shown = ", ".join("{{" + n + "}}" for n in missing)
        problems.append(
            Problem(where, "example_required", f"Give an example value for each variable: {shown}.")
        )
    for name in names:
        value = given.get(name, "")
        if len(value) > EXAMPLE_MAX:
            problems.append(
                Problem(where, "example_too_long", f"The example for {{{{{name}}}}} is too long.")
            )
        if "{{" in value or "\n" in value:
            problems.append(
                Problem(where, "invalid_example", "An example is plain text on one line, without {{ }}.")
            )


def _check_header(draft: dict[str, Any], fmt: str, problems: list[Problem]) -> None:
    header = draft.get("header")
    if header in (None, "", {}):
        return
    if not isinstance(header, dict):
        problems.append(Problem("header", "invalid_header", "The header is an object with a format."))
        return
    kind = (_text(header.get("format")) or "NONE").upper()
    if kind not in HEADER_FORMATS:
        problems.append(
            Problem(
                "header.format",
                "invalid_header_format",
                "The header is none, text, image, video or document.",
            )
        )
        return
    if kind == "TEXT":
        text = _text(header.get("text"))
        if not text.strip():
            problems.append(Problem("header.text", "required", "Write the header text, or choose no header."))
            return
        if len(text) > HEADER_TEXT_MAX:
            problems.append(
                Problem("header.text", "too_long", f"The header is longer than {HEADER_TEXT_MAX} characters.")
            )
        if "\n" in text:
            problems.append(Problem("header.text", "invalid_header", "The header is one line."))
        names = _check_variables(text, fmt, "header.text", problems, max_count=1, edges=False)
        if names:
            _check_examples(header.get("example"), names, fmt, "header.example", problems)
    elif kind in ("IMAGE", "VIDEO", "DOCUMENT"):
        media = _text(header.get("media")).strip()
        if not media:
            problems.append(
                Problem(
                    "header.media",
                    "example_required",
                    f"Give an example {kind.lower()}: an uploaded file's handle or an https URL.",
                )
            )
        elif not (media.startswith("https://") and len(media) <= URL_MAX) and not (
            MEDIA_HANDLE_RE.fullmatch(media) and not media.startswith(("http:", "https:"))
        ):
            problems.append(
                Problem(
                    "header.media", "invalid_media", "The example is an upload handle or an https:// URL."
                )
            )


def _check_body(draft: dict[str, Any], fmt: str, problems: list[Problem]) -> None:
    body = _text(draft.get("body"))
    if not body.strip():
        problems.append(Problem("body", "required", "Write the message body."))
        return
    if len(body) > BODY_MAX:
        problems.append(Problem("body", "too_long", f"The body is longer than {BODY_MAX} characters."))
    names = _check_variables(body, fmt, "body", problems)
    if names:
        _check_examples(draft.get("body_examples"), names, fmt, "body_examples", problems)


def _check_footer(draft: dict[str, Any], problems: list[Problem]) -> None:
    footer = _text(draft.get("footer"))
    if not footer:
        return
    if len(footer) > FOOTER_MAX:
        problems.append(Problem("footer", "too_long", f"The footer is longer than {FOOTER_MAX} characters."))
    if "{{" in footer or "}}" in footer:
        problems.append(Problem("footer", "variables_not_allowed", "The footer cannot have variables."))


def _buttons(draft: dict[str, Any]) -> list[Any]:
    buttons = draft.get("buttons")
    return buttons if isinstance(buttons, list) else []


def _check_buttons(draft: dict[str, Any], problems: list[Problem]) -> None:
    raw = draft.get("buttons")
    if raw not in (None, "") and not isinstance(raw, list):
        problems.append(Problem("buttons", "invalid_buttons", "Buttons are a list."))
        return
    buttons = _buttons(draft)
    kinds: list[str] = []
    for index, button in enumerate(buttons):
        where = f"buttons.{index}"
        if not isinstance(button, dict):
            problems.append(Problem(where, "invalid_button", "Each button is an object with a type."))
            kinds.append("")
            continue
        kind = _text(button.get("type")).upper()
        kinds.append(kind)
        if kind not in BUTTON_TYPES:
            problems.append(
                Problem(
                    f"{where}.type",
                    "unknown_button_type",
                    "A button is a quick reply, a URL, a phone number or a copy code.",
                )
            )
            continue
        if kind != "COPY_CODE":
            text = _text(button.get("text"))
            if not text.strip():
                problems.append(Problem(f"{where}.text", "required", "Write the button's text."))
            elif len(text) > BUTTON_TEXT_MAX:
                problems.append(
                    Problem(
                        f"{where}.text",
                        "too_long",
                        f"A button's text is at most {BUTTON_TEXT_MAX} characters.",
                    )
                )
            elif "{{" in text or "\n" in text:
                problems.append(
                    Problem(
                        f"{where}.text", "invalid_button_text", "A button's text is one line, no variables."
                    )
                )
        if kind == "URL":
            _check_url_button(button, where, problems)
        elif kind == "PHONE_NUMBER":
            _check_phone_button(button, where, problems)
        elif kind == "COPY_CODE":
            example = _text(button.get("example")).strip()
            if not example:
                problems.append(
                    Problem(
                        f"{where}.example",
                        "example_required",
                        "Give an example code for the copy-code button.",
                    )
                )
            elif len(example) > COPY_CODE_EXAMPLE_MAX:
                problems.append(
                    Problem(
                        f"{where}.example",
                        "too_long",
                        f"The example code is at most {COPY_CODE_EXAMPLE_MAX} characters.",
                    )
                )
    limits = (
        ("QUICK_REPLY", MAX_QUICK_REPLIES, "quick-reply buttons"),
        ("URL", MAX_URL_BUTTONS, "URL buttons"),
        ("PHONE_NUMBER", MAX_PHONE_BUTTONS, "phone-number button"),
        ("COPY_CODE", MAX_COPY_CODE_BUTTONS, "copy-code button"),
    )
    for kind, limit, label in limits:
        if kinds.count(kind) > limit:
            problems.append(
                Problem("buttons", "too_many_buttons", f"A template has at most {limit} {label}.")
            )
    if len(buttons) > MAX_BUTTONS:
        problems.append(
            Problem("buttons", "too_many_buttons", f"A template has at most {MAX_BUTTONS} buttons in all.")
        )
    # Quick replies are one group: all of them before, or all after, the other buttons.
    marks = "".join("q" if kind == "QUICK_REPLY" else "o" for kind in kinds)
    if "q" in marks and "o" in marks and not re.fullmatch(r"q+o+|o+q+", marks):
        problems.append(
            Problem(
                "buttons",
                "quick_replies_not_grouped",
                "Put the quick-reply buttons together, before or after the other buttons.",
            )
        )


def _check_url_button(button: dict[str, Any], where: str, problems: list[Problem]) -> None:
    url = _text(button.get("url")).strip()
    if not url:
        problems.append(Problem(f"{where}.url", "required", "Give the button's web address."))
        return
    if len(url) > URL_MAX:
        problems.append(Problem(f"{where}.url", "too_long", f"The address is at most {URL_MAX} characters."))
        return
    if not re.fullmatch(r"https?://[^\s/$.?#][^\s]*", url):
        problems.append(
            Problem(f"{where}.url", "invalid_url", "The address starts with https:// (or http://).")
        )
        return
    names = _variables(url)
    if not names:
        if "{{" in url or "}}" in url:
            problems.append(Problem(f"{where}.url", "invalid_url", "Write the URL's variable as {{1}}."))
        return
    if names != ["1"] or not url.endswith("{{1}}"):
        problems.append(
            Problem(
                f"{where}.url",
                "invalid_url_variable",
                "A URL has at most one variable, {{1}}, at its very end.",
            )
        )
        return
    example = _text(button.get("example")).strip()
    if not example:
        problems.append(
            Problem(
                f"{where}.example",
                "example_required",
                "Give an example of the full address with the variable filled in.",
            )
        )
    elif not example.startswith(url[: -len("{{1}}")]) or len(example) > URL_MAX or "{{" in example:
        problems.append(
            Problem(
                f"{where}.example",
                "invalid_example",
                "The example is the same address with the variable filled in.",
            )
        )


def _check_phone_button(button: dict[str, Any], where: str, problems: list[Problem]) -> None:
    number = _text(button.get("phone_number")).strip()
    if not number:
        problems.append(Problem(f"{where}.phone_number", "required", "Give the phone number to call."))
        return
    try:
        parsed = phonenumbers.parse(number, None)
        valid = phonenumbers.is_valid_number(parsed)
    except phonenumbers.NumberParseException:
        valid = False
    if not valid:
        problems.append(
            Problem(
                f"{where}.phone_number",
                "invalid_phone_number",
                "Give the number in international format with its country code, e.g. +14155550123.",
            )
        )


def _check_authentication(draft: dict[str, Any], problems: list[Problem]) -> None:
    """Meta writes an authentication template's text itself; the business chooses the security note, the
    expiry and the copy-code button's label. One-tap and zero-tap buttons (which need an Android app's
    package and signature) are not offered: Meta's copy-code button works everywhere."""
    header = draft.get("header")
    if isinstance(header, dict) and (_text(header.get("format")) or "NONE").upper() != "NONE":
        problems.append(
            Problem("header", "not_allowed_for_authentication", "Authentication templates have no header.")
        )
    if _text(draft.get("body")).strip():
        problems.append(
            Problem(
                "body",
                "not_allowed_for_authentication",
                "Meta writes an authentication template's text itself: leave the body empty.",
            )
        )
    if _text(draft.get("footer")).strip():
        problems.append(
            Problem(
                "footer",
                "not_allowed_for_authentication",
                "Leave the footer empty: choose the code's expiry instead.",
            )
        )
    for index, button in enumerate(_buttons(draft)):
        kind = _text(button.get("type")).upper() if isinstance(button, dict) else ""
        if kind != "COPY_CODE" or index > 0:
            problems.append(
                Problem(
                    f"buttons.{index}" if kind else "buttons",
                    "not_allowed_for_authentication",
                    "An authentication template has exactly one copy-code button (one-tap and zero-tap "
                    "are not supported here).",
                )
            )
            break
    minutes = draft.get("code_expiration_minutes")
    if minutes not in (None, ""):
        low, high = CODE_EXPIRATION_RANGE
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | str)
            or not str(minutes).isdigit()
            or not (low <= int(minutes) <= high)
        ):
            problems.append(
                Problem(
                    "code_expiration_minutes",
                    "invalid_expiration",
                    f"The code expires after {low} to {high} minutes.",
                )
            )
    label = _text(draft.get("otp_button_text"))
    if len(label) > BUTTON_TEXT_MAX:
        problems.append(
            Problem(
                "otp_button_text", "too_long", f"A button's text is at most {BUTTON_TEXT_MAX} characters."
            )
        )


# -- the request Meta takes ---------------------------------------------------------------------------


def components_of(draft: dict[str, Any]) -> list[dict[str, Any]]:
    """Meta's components for a draft check_draft accepted."""
    if _text(draft.get("category")).upper() == "AUTHENTICATION":
        return _authentication_components(draft)
    fmt = variable_format(draft)
    components: list[dict[str, Any]] = []
    header = draft.get("header") if isinstance(draft.get("header"), dict) else None
    kind = (_text((header or {}).get("format")) or "NONE").upper()
    if header and kind == "TEXT":
        text = _text(header.get("text"))
        component: dict[str, Any] = {"type": "HEADER", "format": "TEXT", "text": text}
        names = list(dict.fromkeys(_variables(text)))
        if names:
            value = _examples(header.get("example"), names, fmt)[names[0]]
            component["example"] = (
                {"header_text_named_params": [{"param_name": names[0], "example": value}]}
                if fmt == "NAMED"
                else {"header_text": [value]}
            )
        components.append(component)
    elif header and kind in ("IMAGE", "VIDEO", "DOCUMENT"):
        components.append(
            {
                "type": "HEADER",
                "format": kind,
                "example": {"header_handle": [_text(header.get("media")).strip()]},
            }
        )
    body = _text(draft.get("body"))
    component = {"type": "BODY", "text": body}
    names = list(dict.fromkeys(_variables(body)))
    if names:
        given = _examples(draft.get("body_examples"), names, fmt)
        component["example"] = (
            {"body_text_named_params": [{"param_name": n, "example": given[n]} for n in names]}
            if fmt == "NAMED"
            else {"body_text": [[given[n] for n in names]]}
        )
    components.append(component)
    if _text(draft.get("footer")):
        components.append({"type": "FOOTER", "text": _text(draft.get("footer"))})
    buttons = [_button(b) for b in _buttons(draft)]
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    return components


def _button(button: dict[str, Any]) -> dict[str, Any]:
    kind = _text(button.get("type")).upper()
    if kind == "COPY_CODE":
        return {"type": "COPY_CODE", "example": _text(button.get("example")).strip()}
    out: dict[str, Any] = {"type": kind, "text": _text(button.get("text"))}
    if kind == "URL":
        out["url"] = _text(button.get("url")).strip()
        if "{{1}}" in out["url"]:
            out["example"] = [_text(button.get("example")).strip()]
    elif kind == "PHONE_NUMBER":
        parsed = phonenumbers.parse(_text(button.get("phone_number")).strip(), None)
        out["phone_number"] = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return out


def _authentication_components(draft: dict[str, Any]) -> list[dict[str, Any]]:
    components: list[dict[str, Any]] = [
        {"type": "BODY", "add_security_recommendation": bool(draft.get("add_security_recommendation"))}
    ]
    minutes = draft.get("code_expiration_minutes")
    if minutes not in (None, ""):
        components.append({"type": "FOOTER", "code_expiration_minutes": int(str(minutes))})
    button: dict[str, Any] = {"type": "OTP", "otp_type": "COPY_CODE"}
    if _text(draft.get("otp_button_text")).strip():
        button["text"] = _text(draft.get("otp_button_text")).strip()
    components.append({"type": "BUTTONS", "buttons": [button]})
    return components


def request_of(draft: dict[str, Any]) -> dict[str, Any]:
    """The body of POST /{waba_id}/message_templates."""
    body: dict[str, Any] = {
        "name": _text(draft.get("name")),
        "language": _text(draft.get("language")),
        "category": _text(draft.get("category")).upper(),
        "components": components_of(draft),
    }
    if body["category"] != "AUTHENTICATION":
        body["parameter_format"] = variable_format(draft)
    return body
