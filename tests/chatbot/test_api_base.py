"""OpenAPI schema, Swagger UI and the one error format."""

from __future__ import annotations

from tests.conftest import HOST_A


def test_openapi_schema_is_served(db, client):
    response = client.get("/api/v1/schema/?format=json", HTTP_HOST=HOST_A)
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/me/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_swagger_ui_is_served(db, client):
    response = client.get("/api/v1/docs/", HTTP_HOST=HOST_A)
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_unknown_api_paths_answer_in_the_error_format(db, client):
    response = client.get("/api/v1/nothing-here/", HTTP_HOST=HOST_A)
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not found.", "details": {}}
    }
