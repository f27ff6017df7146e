"""The small things a newcomer meets first (issue 18): the project list's progress, the login form keeping
the username, the favicon, crowd participants' welcome, settings as JSON, the CLI's stray kombu line and
`sample_items` for every kind."""

import json
import logging
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.template import Context, Template
from django.test import Client
from django.utils import timezone

from annotation import services
from annotation.models import Assignment, Item, Project, Response
from tests.annotation.test_queue import make_project, next_task, submit

pytestmark = [pytest.mark.django_db]


def test_the_project_list_shows_progress_yours_and_the_last_answer(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], items=4)
    client = Client()
    client.force_login(annotator)
    empty = client.get("/").content.decode()
    assert "0 / 4 tasks finished" in empty and "none yet" in empty

    api = api_client_for(annotator)
    assert submit(api, project.slug, next_task(api, project.slug), choice="a").status_code == 201
    page = client.get("/").content.decode()
    row = page[page.index(f'data-project="{project.slug}"') :].split("</tr>")[0]
    assert "1 / 4 tasks finished" in row and 'style="width: 25%"' in row
    assert "just now" in row, row
    Assignment.objects.filter(project=project).update(submitted_at=timezone.now() - timedelta(hours=3))
    assert "3\xa0hours ago" in client.get("/").content.decode()
    assert '<td class="num">1</td>' in row, "the annotator's own answers"


def test_a_failed_login_keeps_the_username(annotator):
    answer = Client().post("/login/", {"username": "ann-annotator", "password": "wrong"})
    assert answer.status_code == 200
    assert b"didn't match" in answer.content
    assert b'value="ann-annotator"' in answer.content
    assert b'type="password" autocomplete="current-password" autofocus' in answer.content


def test_pages_name_a_favicon_that_exists_and_favicon_ico_leads_to_it(annotator):
    from django.contrib.staticfiles import finders

    client = Client()
    client.force_login(annotator)
    assert b'rel="icon" href="/static/loupe/favicon.svg"' in client.get("/").content
    assert b"<svg" in Path(finders.find("loupe/favicon.svg")).read_bytes()
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 302 and redirect["Location"] == "/static/loupe/favicon.svg"


def test_anonymous_crowd_participants_are_welcomed_and_members_are_not(researcher, annotator):
    services.project_create(slug="crowd-hi", kind="rating", created_by=researcher, visibility="public", public_quota=30)
    anonymous = Client().get("/crowd/crowd-hi/").content.decode()
    assert 'id="crowd-welcome"' in anonymous
    assert "No account is needed" in anonymous and "up to 30 answers" in anonymous
    signed_in = Client()
    signed_in.force_login(annotator)
    assert 'id="crowd-welcome"' not in signed_in.get("/crowd/crowd-hi/").content.decode()


def test_the_dashboard_crowd_link_is_a_link(researcher):
    services.project_create(slug="crowd-link", kind="rating", created_by=researcher, visibility="public")
    client = Client()
    client.force_login(researcher)
    page = client.get("/projects/crowd-link/dashboard/").content.decode()
    assert '<a id="crowd-url" href="http://testserver/crowd/crowd-link/"' in page


def test_settings_show_as_json_not_python():
    rendered = Template("{% load loupe_format %}{{ config|as_json }}|{{ config|as_json:0 }}").render(
        Context({"config": {"use_lora": True, "sources": ["human"], "threshold": None}})
    )
    pretty, one_line = rendered.split("|")
    assert json.loads(pretty.replace("&quot;", '"')) == {"use_lora": True, "sources": ["human"], "threshold": None}
    assert (
        one_line
        == "{&quot;use_lora&quot;: true, &quot;sources&quot;: [&quot;human&quot;], &quot;threshold&quot;: null}"
    )
    assert "True" not in rendered and "None" not in rendered and "'" not in rendered


def test_queuing_a_task_on_the_filesystem_broker_prints_no_hostname_warning(caplog):
    """kombu warned "No hostname was supplied" whenever a command queued a task on the embedded broker."""
    from loupe.celery import app, broker_folders_create

    broker_folders_create()
    with caplog.at_level(logging.WARNING), app.connection_for_write() as connection:
        connection.info()
    assert str(app.conf.broker_url).startswith("filesystem://")
    assert not [record for record in caplog.records if "hostname" in record.getMessage()]


@pytest.mark.parametrize("kind", ["correction", "pairwise", "rating", "ranking"])
def test_sample_items_writes_importable_shapes_items_for_every_kind(kind, researcher, tmp_path):
    project = services.project_create(slug=f"sample-{kind}", kind=kind, created_by=researcher)
    out = tmp_path / "sample"
    call_command(
        "sample_items", "--kind", kind, "--n", "3", "--out", str(out), "--project", project.slug, stdout=StringIO()
    )
    lines = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and (out / "images.zip").is_file()
    assert all((out / line["image"]).is_file() for line in lines)
    assert Item.objects.filter(project=project).count() == 3
    answers = [len(line["responses"]) for line in lines]
    assert answers == ([4, 4, 4] if kind == "ranking" else [2, 2, 2])
    for line in lines:
        texts = [response["text"] for response in line["responses"]]
        assert len(set(texts)) == len(texts), "equal answers cannot be compared or ranked"
    assert Response.objects.filter(project=project).count() == sum(answers)
    # The same seed gives the same items: importing again changes nothing.
    call_command("sample_items", "--n", "3", "--out", str(out), "--project", project.slug, stdout=StringIO())
    assert Item.objects.filter(project=project).count() == 3


def test_sample_items_refuses_unclear_requests(researcher, tmp_path):
    services.project_create(slug="sample-pw", kind="pairwise", created_by=researcher)
    with pytest.raises(CommandError, match="--kind: give the project kind"):
        call_command("sample_items", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="--kind: sample-pw is a pairwise project, not ranking"):
        call_command("sample_items", "--kind", "ranking", "--project", "sample-pw", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="--project: no project 'nope'"):
        call_command("sample_items", "--project", "nope", "--out", str(tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(CommandError, match="is a file, not a folder"):
        call_command("sample_items", "--kind", "rating", "--out", str(tmp_path / "file"))
    assert not Project.objects.filter(slug="nope").exists()
