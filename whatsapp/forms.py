"""Forms of the numbers page (Settings → WhatsApp numbers)."""

from __future__ import annotations

from django import forms

from whatsapp import parsing


def _meta_id(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=64,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "spellcheck": "false"}),
    )


class ManualConnectForm(forms.Form):
    """A number the customer already has a token for: Meta verifies the token before anything is saved."""

    phone_number_id = _meta_id("Phone number ID")
    waba_id = _meta_id("WhatsApp Business Account ID")
    access_token = forms.CharField(
        label="Access token",
        max_length=1024,
        # Write-only: never rendered back.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="A system-user token with the whatsapp_business_messaging and "
        "whatsapp_business_management permissions for this account.",
    )
    name = forms.CharField(label="Display name (optional)", max_length=100, required=False)
    # Reconnect: the number of this workspace whose token is replaced (a new token, the same number).
    reconnect = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self) -> dict:
        data = super().clean() or {}
        for name in ("phone_number_id", "waba_id"):
            value = (data.get(name) or "").strip()
            if value and not parsing.ID_RE.match(value):
                self.add_error(name, "Meta's ids are digits only (see WhatsApp Manager → API setup).")
        return data


class EmbeddedSignupForm(forms.Form):
    """What the browser posts once Meta's Embedded Signup finished."""

    code = forms.CharField(max_length=2048)
    phone_number_id = forms.CharField(max_length=64)
    waba_id = forms.CharField(max_length=64)


class AppSecretForm(forms.Form):
    app_secret = forms.CharField(
        label="App secret of your Meta app",
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
