from __future__ import annotations


def test_an_incoming_request_id_is_honoured_and_returned(public_client):
    response = public_client.get("/", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"


def test_a_malformed_request_id_is_replaced(public_client):
    response = public_client.get("/", HTTP_X_REQUEST_ID="<script>")
    assert response["X-Request-ID"] != "<script>"
    assert len(response["X-Request-ID"]) == 32


def test_security_headers_are_set(client_a):
    response = client_a.get("/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_login_form_carries_a_csrf_token(client_a):
    assert b"csrfmiddlewaretoken" in client_a.get("/login/").content


def test_metrics_are_open_on_the_public_host(public_client):
    response = public_client.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests" in response.content


def test_metrics_on_a_tenant_host_need_the_token(client_a, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert client_a.get("/metrics").status_code == 403
    assert client_a.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client_a.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_a_missing_page_is_a_clean_404_without_a_trace(client_a):
    response = client_a.get("/no/such/page/")
    assert response.status_code == 404
    assert b"Traceback" not in response.content
