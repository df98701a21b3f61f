"""Knowledge errors: one ServiceError subclass, stable codes (clients and the source list branch on them)."""

from __future__ import annotations

from core.errors import ServiceError


class KnowledgeError(ServiceError):
    status = 400


# code -> what the person sees when the source failed for that reason
MESSAGES = {
    "unsupported_type": "This file type is not supported: upload TXT, Markdown, HTML, PDF or DOCX.",
    "empty_file": "The file is empty.",
    "too_large": "The file is larger than the limit.",
    "no_text": "No text was found in it.",
    "pdf_no_text": "The PDF has no text layer (a scan?): nothing could be extracted.",
    "pdf_encrypted": "The PDF is password-protected.",
    "invalid_file": "The file could not be read: it is damaged or not what its name says.",
    "fetch_failed": "The page could not be fetched.",
    "timeout": "The page took too long to answer.",
    "address_not_allowed": "The address points to a private or reserved network.",
    "http_error": "The page answered with an error.",
    "index_error": "Indexing failed unexpectedly; try again.",
}
