"""A database that cannot be reached (PostgreSQL restarting: bench/load.py saw 49 HTTP 500s in its fault run)
answers 503 with Retry-After and a one-line message, on the API and the pages, and stores nothing.

The outage is simulated by making the view's first query raise psycopg's error as Django wraps it: a real
restart cannot be timed to land inside one request of a test (bench/load.py --restart-postgres does it for real)."""

import pytest
from django.db import OperationalError

from annotation import selectors

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_down(monkeypatch):
    def unreachable(**_kwargs):
        raise OperationalError("consuming input failed: server closed the connection unexpectedly")

    monkeypatch.setattr(selectors, "project_list_for_user", unreachable)


def test_the_api_answers_503_with_retry_after_when_the_database_is_down(api_client_for, researcher, database_down):
    response = api_client_for(researcher).get("/api/v1/projects/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = response.json()
    assert body["message"].startswith("The database is unavailable for a moment; nothing was stored.")
    assert "server closed" not in body["message"]  # the cause is for the log, not the user


def test_a_page_answers_503_too(client, researcher, database_down):
    client.force_login(researcher)
    response = client.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"Try again in a few seconds" in response.content


def test_other_errors_are_not_taken_for_an_outage(api_client_for, researcher, monkeypatch):
    def broken(**_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "project_list_for_user", broken)
    with pytest.raises(RuntimeError):
        api_client_for(researcher).get("/api/v1/projects/")
