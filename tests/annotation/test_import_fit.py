"""An import fits the project it goes into: a format whose items cannot be the project's tasks is refused,
naming the kind it needs, before anything is read or queued; a caption contest without its cartoon says so."""

import io
import json

import pytest

from annotation import services
from annotation.models import DataJob, Item
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.django_db

REAL_660 = SHARED_DATA / "caption-contest" / "660_summary_KLUCB.first2000.csv"


def _post(client, slug: str, import_format: str, content: bytes, name: str, *, endpoint: str = "imports"):
    file = io.BytesIO(content)
    file.name = name
    return client.post(
        f"/api/v1/projects/{slug}/{endpoint}/", {"format": import_format, "file": file}, format="multipart"
    )


def _rlaif_v_parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"question": ["What is red?"], "chosen": ["A cup."], "rejected": ["A plate."]}), sink)
    return sink.getvalue()


@pytest.fixture
def rating_project(researcher):
    return services.project_create(slug="ratings", kind="rating", created_by=researcher)


def test_rlaif_v_pairs_into_a_rating_project_are_refused_naming_pairwise(rating_project, researcher, api_client_for):
    """RLAIF-V holds two answers and a preference: only a pairwise project can take it."""
    response = _post(api_client_for(researcher), "ratings", "rlaif-v", _rlaif_v_parquet(), "rlaif.parquet")
    assert response.status_code == 400
    assert response.json() == {
        "message": "rlaif-v files import into pairwise projects; 'ratings' is a rating project.",
        "extra": {"field": "format", "format": "rlaif-v", "project_kind": "rating", "needs": ["pairwise"]},
    }
    assert not Item.objects.exists()


def test_a_caption_contest_into_a_pairwise_project_is_refused_naming_rating(
    pairwise_project, researcher, api_client_for
):
    """A contest table is rated caption by caption: a pairwise project cannot take it, through the direct
    import or a background job (refused before a job is queued)."""
    client = api_client_for(researcher)
    for endpoint in ("imports", "import-jobs"):
        response = _post(
            client, "shapes-pairwise", "caption-contest", REAL_660.read_bytes(), REAL_660.name, endpoint=endpoint
        )
        assert response.status_code == 400, endpoint
        assert response.json()["message"] == (
            "caption-contest files import into rating projects; 'shapes-pairwise' is a pairwise project."
        )
        assert response.json()["extra"]["needs"] == ["rating"]
    assert not Item.objects.exists() and not DataJob.objects.exists()


def test_rlhf_v_corrections_into_a_pairwise_project_are_refused_naming_correction(
    pairwise_project, researcher, api_client_for
):
    """An RLHF-V record is one answer with its correction: a correction project's task, not a pairwise one."""
    records = [{"idx": 1, "question": "Q?", "chosen": "A blue cup.", "rejected": "A red cup."}]
    response = _post(api_client_for(researcher), "shapes-pairwise", "rlhf-v", json.dumps(records).encode(), "r.json")
    assert response.status_code == 400
    assert response.json()["extra"]["needs"] == ["correction"]
    assert "rlhf-v files import into correction projects" in response.json()["message"]


def test_single_response_items_into_a_pairwise_project_are_refused_by_their_line(
    pairwise_project, rating_project, researcher, api_client_for
):
    """Loupe JSONL fits any kind item by item: an item with one answer cannot be compared, so a pairwise
    import of it names its line, says which kinds take it, and stores nothing of the file."""
    lines = [
        {"external_id": "two", "prompt": "Q", "responses": [{"text": "a"}, {"text": "b"}]},
        {"external_id": "one", "prompt": "Q", "responses": [{"text": "a"}]},
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    response = _post(api_client_for(researcher), "shapes-pairwise", "loupe-jsonl", content, "items.jsonl")
    assert response.status_code == 400
    assert response.json() == {
        "message": "line 2, field 'responses': has 1 response(s), but the tasks of a pairwise project compare two "
        "or more; import it into a rating or correction project",
        "extra": {"line": 2, "field": "responses"},
    }
    assert not Item.objects.exists()
    rated = _post(api_client_for(researcher), "ratings", "loupe-jsonl", content, "items.jsonl")
    assert rated.status_code == 201 and rated.json()["created"] == 2


def test_a_contest_without_its_cartoon_imports_with_a_warning(rating_project, researcher, api_client_for):
    """Loupe projects have no setting that hides images, so a table without its cartoon is imported, and
    the answer says the item has no image."""
    response = _post(api_client_for(researcher), "ratings", "caption-contest", REAL_660.read_bytes(), REAL_660.name)
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 1
    (warning,) = response.json()["warnings"]
    assert warning.startswith("The caption-contest table came without its cartoon (image)")
    assert Item.objects.get().image == ""


def test_the_datasets_page_offers_only_the_formats_the_project_takes(pairwise_project, researcher, client):
    """A pairwise project's page lists RLAIF-V and the any-kind formats, not caption contests or RLHF-V."""
    client.force_login(researcher)
    page = client.get("/projects/shapes-pairwise/datasets/").content.decode()
    offered = {name for name, _ in page_import_formats(page)}
    assert offered == {"loupe-jsonl", "rlaif-v", "label-studio"}


def page_import_formats(page: str) -> list[tuple[str, str]]:
    import re

    select = page[page.index('id="import-format"') : page.index("</select>", page.index('id="import-format"'))]
    return re.findall(r'<option value="([^"]+)">([^<]+)</option>', select)
