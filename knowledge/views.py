"""Settings → AI → Knowledge (/settings/ai/knowledge/): sources (upload, paste, web page), their status
(polled with htmx while any is processing), re-index and delete; FAQ pairs (add, edit, approve, delete).
Owners and admins only; everyone else gets the 403 page. Forms post and redirect back (no script needed);
a service's refusal shows as a message with its text."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.errors import ServiceError
from crm.views import member_required
from knowledge import selectors, services
from knowledge.models import Faq, Language, Source

ADMIN = "admin"


class UploadForm(forms.Form):
    file = forms.FileField(allow_empty_file=True)
    title = forms.CharField(required=False, max_length=200)
    language = forms.ChoiceField(choices=Language.choices, initial="auto")


class TextForm(forms.Form):
    title = forms.CharField(max_length=200)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), max_length=services.MAX_TEXT_CHARS)
    language = forms.ChoiceField(choices=Language.choices, initial="auto")


class UrlForm(forms.Form):
    url = forms.URLField(max_length=2000, assume_scheme="https", label="Page address")
    title = forms.CharField(required=False, max_length=200)
    language = forms.ChoiceField(choices=Language.choices, initial="auto")


class FaqForm(forms.Form):
    question = forms.CharField(max_length=500)
    answer = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=4000)
    language = forms.ChoiceField(choices=Language.choices, initial="auto")


def _context(**extra: Any) -> dict[str, Any]:
    sources = list(selectors.sources().order_by("-id")[:500])
    return {
        "sources": sources,
        "polling": any(s.status == Source.Status.PROCESSING for s in sources),
        "faqs": list(selectors.faqs().order_by("status", "-id")[:500]),
        # One page, four forms: each its own element ids.
        "upload_form": UploadForm(auto_id="upload_%s"),
        "text_form": TextForm(auto_id="text_%s"),
        "url_form": UrlForm(auto_id="url_%s"),
        "faq_form": FaqForm(auto_id="faq_%s"),
        "max_mb": settings.KNOWLEDGE_MAX_FILE_BYTES // (1024 * 1024),
        **extra,
    }


@require_GET
@member_required(ADMIN)
def knowledge_page(request: HttpRequest) -> HttpResponse:
    return render(request, "knowledge/page.html", _context())


@require_GET
@member_required(ADMIN)
def sources_partial(request: HttpRequest) -> HttpResponse:
    """The sources table alone: what the page polls while something is indexing."""
    return render(request, "knowledge/_sources.html", _context())


def _done(request: HttpRequest, form: forms.Form, action: Any, ok: str) -> HttpResponseBase:
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{field}: {error}" if field != "__all__" else str(error))
        return redirect("knowledge-sources")
    try:
        action(form.cleaned_data)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, ok)
    return redirect("knowledge-sources")


@require_POST
@member_required(ADMIN)
def upload_view(request: HttpRequest) -> HttpResponseBase:
    form = UploadForm(request.POST, request.FILES)

    def act(data: dict[str, Any]) -> None:
        upload = data["file"]
        if upload.size > settings.KNOWLEDGE_MAX_FILE_BYTES:
            raise services.KnowledgeError(
                "too_large",
                f"The file is larger than {settings.KNOWLEDGE_MAX_FILE_BYTES // (1024 * 1024)} MB.",
            )
        services.create_file_source(
            name=upload.name,
            data=upload.read(),
            content_type=upload.content_type or "",
            title=data["title"],
            language=data["language"],
            user=request.user,
        )

    return _done(request, form, act, "Uploaded: indexing.")


@require_POST
@member_required(ADMIN)
def text_view(request: HttpRequest) -> HttpResponseBase:
    form = TextForm(request.POST)

    def act(data: dict[str, Any]) -> None:
        services.create_text_source(
            title=data["title"], text=data["text"], language=data["language"], user=request.user
        )

    return _done(request, form, act, "Text added.")


@require_POST
@member_required(ADMIN)
def url_view(request: HttpRequest) -> HttpResponseBase:
    form = UrlForm(request.POST)

    def act(data: dict[str, Any]) -> None:
        services.create_url_source(
            url=data["url"], title=data["title"], language=data["language"], user=request.user
        )

    return _done(request, form, act, "Page added: fetching.")


@require_POST
@member_required(ADMIN)
def reindex_view(request: HttpRequest, pk: int) -> HttpResponseBase:
    source = get_object_or_404(selectors.sources(), pk=pk)
    services.reindex_source(source=source)
    messages.success(request, "Re-fetching." if source.kind == Source.Kind.URL else "Re-indexing.")
    return redirect("knowledge-sources")


@require_POST
@member_required(ADMIN)
def delete_view(request: HttpRequest, pk: int) -> HttpResponseBase:
    source = get_object_or_404(selectors.sources(), pk=pk)
    services.delete_source(source=source)
    messages.success(request, "Source deleted.")
    return redirect("knowledge-sources")


@require_POST
@member_required(ADMIN)
def faq_add_view(request: HttpRequest) -> HttpResponseBase:
    form = FaqForm(request.POST)

    def act(data: dict[str, Any]) -> None:
        services.create_faq(
            question=data["question"], answer=data["answer"], language=data["language"], user=request.user
        )

    return _done(request, form, act, "FAQ added.")


@require_http_methods(["GET", "POST"])
@member_required(ADMIN)
def faq_edit_view(request: HttpRequest, pk: int) -> HttpResponseBase:
    faq = get_object_or_404(selectors.faqs(), pk=pk)
    if request.method == "POST":
        form = FaqForm(request.POST)
        if form.is_valid():
            try:
                services.update_faq(
                    faq=faq,
                    question=form.cleaned_data["question"],
                    answer=form.cleaned_data["answer"],
                    language=form.cleaned_data["language"],
                )
                if request.POST.get("approve") and faq.status == Faq.Status.PENDING:
                    services.approve_faq(faq=faq, user=request.user)
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, "FAQ saved.")
                return redirect("knowledge-sources")
    else:
        form = FaqForm(initial={"question": faq.question, "answer": faq.answer, "language": faq.language})
    return render(request, "knowledge/faq_edit.html", {"faq": faq, "form": form})


@require_POST
@member_required(ADMIN)
def faq_approve_view(request: HttpRequest, pk: int) -> HttpResponseBase:
    faq = get_object_or_404(selectors.faqs(), pk=pk)
    services.approve_faq(faq=faq, user=request.user)
    messages.success(request, "FAQ approved: the AI agent can use it now.")
    return redirect("knowledge-sources")


@require_POST
@member_required(ADMIN)
def faq_delete_view(request: HttpRequest, pk: int) -> HttpResponseBase:
    faq = get_object_or_404(selectors.faqs(), pk=pk)
    services.delete_faq(faq=faq)
    messages.success(request, "FAQ deleted.")
    return redirect("knowledge-sources")
