from tenants.tests.backup_fixtures import make_tenant, storages_in  # noqa: F401  (fixtures)
