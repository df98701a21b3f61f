"""crm 0005/0006: existing API keys get an identity, and none gains visibility it did not have.

Runs the real migrations backwards and forwards in a tenant of its own, made inside the test's
transaction (PostgreSQL's DDL is transactional: nothing outlives the test)."""

from __future__ import annotations

from typing import Any

from django.db.migrations.executor import MigrationExecutor
from django_tenants.utils import schema_context

from conftest import PASSWORD
from tenants.db import connection

BEFORE = [("crm", "0004_tenant_users_are_not_superusers")]
DATA = [("crm", "0005_api_key_identity")]
AFTER = [("crm", "0006_api_key_identity_constraint")]


def _migrate(targets: list[tuple[str, str]]) -> Any:
    # `migrate` gives each migration its own transaction; here they all run inside the test's, where
    # PostgreSQL refuses an ALTER TABLE while foreign-key checks of changed rows are still deferred.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_old_keys_become_integration_keys_or_their_agents_personal_keys_or_revoked(db: None) -> None:
    from crm.services import create_agent
    from onboarding.services import onboard_tenant

    tenant = onboard_tenant(
        slug="keymig", name="Key migration", owner_email="owner@keymig.test", owner_password=PASSWORD
    ).tenant
    with schema_context(tenant.schema_name):
        owner_id = create_agent(email="boss@keymig.test", password=None, role="owner").user.pk
        agent_id = create_agent(email="ann@keymig.test", password=None, role="agent").user.pk
        old = _migrate(BEFORE)
        key = old.get_model("crm", "ApiKey")
        for i, (name, role, created_by) in enumerate(
            (
                ("admin", "admin", owner_id),
                ("supervisor", "supervisor", None),
                ("agent's own", "agent", agent_id),
                ("made by the owner", "agent", owner_id),
                ("made by the command", "agent", None),
            )
        ):
            key.objects.create(
                name=name,
                prefix=f"mig{i}",
                hashed_key="0" * 64,
                role=role,
                created_by_id=created_by,
            )
        _migrate(DATA)
        new = _migrate(AFTER)
        rows = {
            k.name: (k.kind, k.role, k.user_id, k.revoked_at is not None)
            for k in new.get_model("crm", "ApiKey").objects.all()
        }
    assert rows == {
        "admin": ("integration", "admin", None, False),
        "supervisor": ("integration", "supervisor", None, False),
        # Exactly the agent's view, as before.
        "agent's own": ("personal", "", agent_id, False),
        # Its maker's personal key would see everything: revoked instead.
        "made by the owner": ("personal", "", None, True),
        "made by the command": ("personal", "", None, True),
    }
    connection.set_schema_to_public()
