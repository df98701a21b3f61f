from __future__ import annotations

from django import forms


class SignupForm(forms.Form):
    # Shapes only; the signup service owns the rules and their messages (onboarding.signup).
    business_name = forms.CharField(max_length=200)
    slug = forms.CharField(
        label="Subdomain",
        max_length=40,
        help_text="2 to 40 lowercase letters or digits, starting with a letter: your workspace's address.",
    )
    owner_name = forms.CharField(label="Your name", max_length=150)
    email = forms.CharField(label="Email", max_length=254, widget=forms.EmailInput)
    password = forms.CharField(widget=forms.PasswordInput, strip=False, max_length=128)
