"""What a failed message's error code means for the agent looking at it, and what to do next.

Meta's titles ("Re-engagement message", "Message undeliverable") name the rule, not the remedy; the thread
shows this explanation under them. Codes are WhatsApp Cloud API ones, but the text is about the
conversation, so it lives here (conversations never imports a channel app) and another channel may add its
own codes. An unknown code shows only Meta's title and details, as before.
"""

from __future__ import annotations

EXPLANATIONS: dict[str, str] = {
    "131047": (
        "More than 24 hours since the customer last wrote: send an approved template to reopen the "
        "conversation."
    ),
    "131026": (
        "WhatsApp could not deliver to this number: it may not be on WhatsApp, use an old version of the "
        "app, or not have accepted WhatsApp's latest terms. Check the number or reach the customer another "
        "way."
    ),
    "131051": "WhatsApp does not support this kind of message. Send it as text, an image or a document.",
    "130429": (
        "This WhatsApp number is sending faster than WhatsApp allows right now. Wait a moment, then retry."
    ),
    "131056": (
        "Too many messages to this customer in a short time. Wait a little before retrying, or combine "
        "them into one message."
    ),
    "131049": (
        "WhatsApp held back this marketing message to keep the customer from receiving too many. Try again "
        "later, or wait for the customer to write."
    ),
    "131050": "The customer has stopped marketing messages from this business.",
    "131021": "The recipient is this business's own number.",
    "131052": "The customer's file could not be downloaded from WhatsApp. Ask them to send it again.",
    "131053": (
        "The file could not be sent: WhatsApp refused its type or size. Try another format or a smaller file."
    ),
    "132000": "The template's placeholders and the values given do not match. Pick the template again.",
    "132001": "This template does not exist (or not in this language) for the number. Sync the templates.",
}


def explain(code: object) -> str:
    """The explanation for a stored error code ("131047", 131047), or "" when there is none."""
    return EXPLANATIONS.get(str(code or "").strip(), "")
