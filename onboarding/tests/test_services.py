from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context, schema_exists

from conftest import PASSWORD
from crm.models import Agent
from onboarding.services import OnboardingError, onboard_tenant
from tenants.models import Domain, Tenant


def test_onboarding_creates_the_tenant_its_domain_and_its_owner(db):
    result = onboard_tenant(
        slug="gamma", name="Gamma Co", owner_email="Boss@Gamma.test", owner_password=PASSWORD
    )
    assert result.url == "http://gamma.localhost/"
    assert schema_exists("gamma")
    assert Domain.objects.get(tenant=result.tenant).domain == "gamma.localhost"
    with schema_context("gamma"):
        owner = get_user_model().objects.get(email="boss@gamma.test")
        assert owner.check_password(PASSWORD)
        # Staff (the tenant admin's sign-in) but never a superuser: what an owner may do comes from the role.
        assert owner.is_staff and not owner.is_superuser
        assert Agent.objects.get(user=owner).role == "owner"
        # The clone carries the template's migration records: the schema is fully migrated.
        from django.db.migrations.recorder import MigrationRecorder

        assert MigrationRecorder.Migration.objects.filter(app="conversations").exists()


def test_the_command_prints_the_tenant_url_last(db, capsys):
    call_command(
        "onboard_tenant", slug="delta", name="Delta", owner_email="o@delta.test", owner_password=PASSWORD
    )
    assert capsys.readouterr().out.strip().splitlines()[-1] == "http://delta.localhost/"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"slug": "Bad Slug"}, "invalid_slug"),
        ({"slug": "a"}, "invalid_slug"),
        ({"slug": "with-dash"}, "invalid_slug"),
        ({"slug": "1abc"}, "invalid_slug"),
        ({"slug": "public"}, "reserved_slug"),
        ({"slug": "www"}, "reserved_slug"),
        ({"slug": "admin"}, "reserved_slug"),
        ({"slug": "api"}, "reserved_slug"),
        ({"slug": "pgdata"}, "reserved_slug"),
        ({"slug": "alpha"}, "duplicate_slug"),
        ({"name": "  "}, "invalid_name"),
        ({"owner_email": "not-an-email"}, "invalid_email"),
        ({"owner_password": "short"}, "weak_password"),
        ({"owner_password": "password123"}, "weak_password"),
        ({"owner_password": "12345678901"}, "weak_password"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_created(db, kwargs, code):
    params = {
        "slug": "epsilon",
        "name": "Epsilon",
        "owner_email": "o@epsilon.test",
        "owner_password": PASSWORD,
    }
    params.update(kwargs)
    tenants_before = Tenant.objects.count()
    with pytest.raises(OnboardingError) as info:
        onboard_tenant(**params)
    assert info.value.code == code
    assert Tenant.objects.count() == tenants_before
    assert not schema_exists("epsilon")


def test_the_command_exits_non_zero_with_the_reason(db):
    with pytest.raises(CommandError, match="reserved_slug"):
        call_command("onboard_tenant", slug="www", name="W", owner_email="o@w.test", owner_password=PASSWORD)


def test_a_failure_after_the_schema_exists_leaves_nothing_behind(db, monkeypatch):
    import onboarding.services

    def explode(**kwargs):
        raise RuntimeError("owner creation failed")

    monkeypatch.setattr(onboarding.services, "create_agent", explode)
    with pytest.raises(RuntimeError):
        onboard_tenant(slug="zeta", name="Zeta", owner_email="o@zeta.test", owner_password=PASSWORD)
    assert not Tenant.objects.filter(slug="zeta").exists()
    assert not Domain.objects.filter(domain="zeta.localhost").exists()
    assert not schema_exists("zeta")
