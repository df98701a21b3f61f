"""The "Link with QR code" form: which WAHA server, its key and the session (checked by waha.sessions)."""

from __future__ import annotations

from django import forms


class LinkForm(forms.Form):
    server_url = forms.CharField(
        label="WAHA server URL",
        max_length=300,
        required=False,
        widget=forms.URLInput(attrs={"placeholder": "https://waha.example.com", "autocomplete": "off"}),
        help_text="Your WAHA (WhatsApp HTTP API) server. Empty: this platform's, when it has one.",
    )
    api_key = forms.CharField(
        label="API key",
        max_length=500,
        required=False,
        # Write-only: never rendered back.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The server's X-Api-Key (WAHA's WHATSAPP_API_KEY). Empty: the platform's, with its server.",
    )
    session = forms.CharField(
        label="Session name",
        max_length=54,
        initial="default",
        help_text="Letters, digits, '_' and '-'. WAHA Core has one session, 'default'.",
    )
    name = forms.CharField(label="Display name (optional)", max_length=100, required=False)
