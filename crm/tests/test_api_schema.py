from __future__ import annotations


def test_the_openapi_schema_documents_every_endpoint_and_its_errors(client_a):
    response = client_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for resource in (
        "contacts",
        "companies",
        "tags",
        "attribute-definitions",
        "notes",
        "pipelines",
        "stages",
        "deals",
        "tasks",
        "agents",
        "teams",
        "contact-imports",
    ):
        assert f"/api/v1/{resource}/" in paths
    assert "/api/v1/contacts/{id}/merge/" in paths
    listing = paths["/api/v1/contacts/"]["get"]["responses"]
    assert {"200", "400", "401", "403", "429"} <= set(listing)
    assert listing["429"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    assert "404" in paths["/api/v1/contacts/{id}/"]["get"]["responses"]
    assert "apiKey" in schema["components"]["securitySchemes"]


def test_the_interactive_docs_load_from_our_own_host(client_a):
    page = client_a.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and "cdn.jsdelivr" not in html and "<script>" not in html
    assert client_a.get("/api/docs/?script=").status_code == 200
