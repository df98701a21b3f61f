"""The audit table refuses UPDATE and DELETE in the database too: an append-only log that a raw query,
a shell or a bug elsewhere could rewrite is not one.

The trigger function lives in public (one copy, created by whichever schema migrates first; tenant
schemas migrate after public). The trigger is created on the table of the schema being migrated
(unqualified name: django-tenants puts that schema first on the search path), so public, the tenant
template and every tenant get one; tenants cloned from the template get it from tenants.cloning.
TRUNCATE is left alone: test-database flushes use it, and dropping a tenant's schema is the lifecycle's
business, not a rewrite of its history.
"""

from django.db import migrations

FUNCTION = "public.core_audit_event_append_only"

CREATE_FUNCTION = f"""
DO $$
BEGIN
  IF to_regprocedure('{FUNCTION}()') IS NULL THEN
    CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $body$
    BEGIN
      RAISE EXCEPTION 'audit events are append-only (% refused on %.%)', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
    END
    $body$;
  END IF;
END
$$;
CREATE TRIGGER core_auditevent_append_only BEFORE UPDATE OR DELETE ON core_auditevent
  FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();
"""

DROP = "DROP TRIGGER IF EXISTS core_auditevent_append_only ON core_auditevent;"


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [migrations.RunSQL(CREATE_FUNCTION, DROP)]
