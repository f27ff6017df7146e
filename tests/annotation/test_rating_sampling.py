"""Which caption a rater gets next, through the API: uniform (least-rated first) and adaptive (KL-LUCB for
the top k), never the same caption twice, with the quota and the rate limit of a public project."""

import random
import statistics
import time
import uuid
from collections import Counter

import pytest

from annotation import services
from annotation.models import Item, Project, Response
from annotation.services.caption_sampling import sampler_forget

pytestmark = [pytest.mark.production_path]

LEVELS = ["unfunny", "somewhat funny", "funny"]


@pytest.fixture(autouse=True)
def fresh_sampler(settings):
    # Every choice sees every vote so far (production reloads every 2 s; see caption_sampling).
    settings.LOUPE_RATING_SAMPLER_REFRESH_SECONDS = 0
    sampler_forget()
    yield
    sampler_forget()


def rating_project(researcher, members, *, captions, imported=None, **options) -> Project:
    project = services.project_create(slug="contest", kind="rating", created_by=researcher, **options)
    for user in members:
        services.project_member_add(project=project, user=user)
    item = Item.objects.create(project=project, external_id="cartoon", prompt="Caption this")
    Response.objects.bulk_create(
        [
            Response(
                item=item,
                position=k,
                text=f"caption {k}",
                meta={"rating_counts": dict(zip(LEVELS, imported[k], strict=True))} if imported else {},
            )
            for k in range(captions)
        ]
    )
    return project


def next_task(client, slug="contest"):
    response = client.post(f"/api/v1/projects/{slug}/tasks/next/")
    assert response.status_code in (200, 204), response.content
    return None if response.status_code == 204 else response.json()


def rate(client, task, level, slug="contest"):
    response = client.post(
        f"/api/v1/projects/{slug}/tasks/{task['assignment_id']}/submit/",
        {"client_request_id": uuid.uuid4().hex, "level": level},
        format="json",
    )
    assert response.status_code in (200, 201), response.content


@pytest.mark.django_db
def test_sampling_is_a_project_setting_of_the_api(admin_user, api_client_for):
    client = api_client_for(admin_user)
    made = client.post(
        "/api/v1/projects/",
        {"slug": "nyc", "kind": "rating", "rating_sampling": "adaptive", "rating_top_k": 5},
        format="json",
    )
    assert made.status_code == 201, made.content
    assert (made.json()["rating_sampling"], made.json()["rating_top_k"]) == ("adaptive", 5)
    assert client.get("/api/v1/projects/nyc/").json()["rating_sampling"] == "adaptive"
    changed = client.patch("/api/v1/projects/nyc/", {"rating_sampling": "uniform"}, format="json")
    assert changed.json()["rating_sampling"] == "uniform"
    bad = client.patch("/api/v1/projects/nyc/", {"rating_sampling": "greedy", "rating_top_k": 0}, format="json")
    assert bad.status_code == 400
    assert {"rating_sampling", "rating_top_k"} <= set(bad.json()["extra"]["fields"])
    default = client.post("/api/v1/projects/", {"slug": "plain", "kind": "rating"}, format="json").json()
    assert (default["rating_sampling"], default["rating_top_k"]) == ("uniform", 10)


@pytest.mark.django_db
def test_uniform_gives_the_least_rated_caption_first(researcher, make_user, api_client_for):
    raters = [make_user(f"uniform-{i}") for i in range(3)]
    rating_project(researcher, raters, captions=4, overlap=3)
    clients = [api_client_for(rater) for rater in raters]
    first = next_task(clients[0])
    rate(clients[0], first, 2)
    # Caption 0 has a rating now; the next rater gets an unrated one, not the same caption again.
    second = next_task(clients[1])
    assert second["response_id"] != first["response_id"]
    rate(clients[1], second, 0)
    third = next_task(clients[2])
    assert third["response_id"] not in (first["response_id"], second["response_id"])
    # Every caption rated once: the first rater goes on with one they never had.
    rate(clients[2], third, 1)
    fourth = next_task(clients[0])
    assert fourth["response_id"] not in (first["response_id"],)
    assert len({first["response_id"], second["response_id"], third["response_id"], fourth["response_id"]}) == 4


@pytest.mark.django_db
@pytest.mark.parametrize("sampling", ["adaptive", "uniform"])
def test_a_rater_never_gets_the_same_caption_twice(researcher, annotator, api_client_for, sampling):
    rng = random.Random(5)
    imported = [[rng.randrange(20), rng.randrange(10), rng.randrange(5)] for _ in range(25)]
    project = rating_project(
        researcher, [annotator], captions=25, imported=imported, overlap=100, rating_sampling=sampling, rating_top_k=3
    )
    client = api_client_for(annotator)
    seen = []
    while (task := next_task(client)) is not None:
        seen.append(task["response_id"])
        rate(client, task, rng.randrange(3))
        assert len(seen) <= 25
    assert sorted(seen) == sorted(Response.objects.filter(project=project).values_list("pk", flat=True))


@pytest.mark.django_db
def test_adaptive_concentrates_votes_on_the_contenders(researcher, make_user, api_client_for):
    """A contest imported with its votes so far: six close contenders, fourteen clearly unfunny captions. The
    adaptive sampler spends most of the new votes on the contenders (uniform would spend 30% there)."""
    contenders = [[7, 6, 7], [8, 6, 6], [7, 7, 6], [8, 7, 5], [9, 5, 6], [8, 8, 4]]
    duds = [[19, 1, 0]] * 14
    imported = contenders + duds
    truth = [[n / 20 for n in counts] for counts in imported]
    raters = [make_user(f"crowd-{i}") for i in range(30)]
    project = rating_project(
        researcher, raters, captions=20, imported=imported, overlap=1000, rating_sampling="adaptive", rating_top_k=3
    )
    position = dict(Response.objects.filter(project=project).values_list("pk", "position"))
    rng = random.Random(11)
    votes = Counter()
    for rater in raters:
        client = api_client_for(rater)
        for _ in range(4):  # a crowd: many raters, a few votes each (nobody rates a caption twice)
            task = next_task(client)
            k = position[task["response_id"]]
            votes[k] += 1
            rate(client, task, rng.choices(range(3), weights=truth[k])[0])
    on_contenders = sum(votes[k] for k in range(len(contenders)))
    assert sum(votes.values()) == 120
    assert on_contenders >= 0.75 * 120, votes


@pytest.mark.django_db
def test_adaptive_respects_the_quota_and_the_rate_limit(researcher, make_user, api_client_for):
    quota_rater, fast_rater = make_user("quota-rater"), make_user("fast-rater")
    rating_project(
        researcher,
        [quota_rater, fast_rater],
        captions=12,
        overlap=50,
        visibility="public",
        public_quota=4,
        public_rate_per_minute=0,
        rating_sampling="adaptive",
        rating_top_k=2,
    )
    client = api_client_for(quota_rater)
    for _ in range(4):
        rate(client, next_task(client), 1)
    over = client.post("/api/v1/projects/contest/tasks/next/")
    assert over.status_code == 204
    assert over["X-Queue-Reason"] == "quota"

    Project.objects.filter(slug="contest").update(public_quota=0, public_rate_per_minute=3)
    client = api_client_for(fast_rater)
    for _ in range(3):
        rate(client, next_task(client), 2)
    limited = client.post("/api/v1/projects/contest/tasks/next/")
    assert limited.status_code == 429


@pytest.mark.django_db
def test_next_caption_at_ten_thousand_captions_does_not_read_them_all(researcher, make_user):
    """The adaptive choice at 10,000 captions: after the first (which loads the sampler), a next task costs
    about what it costs at 100 captions (measured ~2 ms on a loaded 2-core machine)."""
    from django.test import override_settings

    rater = make_user("big-rater")
    rng = random.Random(3)
    imported = [[rng.randrange(40), rng.randrange(20), rng.randrange(10)] for _ in range(10_000)]
    project = rating_project(
        researcher, [rater], captions=10_000, imported=imported, overlap=1000, rating_sampling="adaptive"
    )
    timings = []
    with override_settings(LOUPE_RATING_SAMPLER_REFRESH_SECONDS=3600):
        services.assignment_next(project=project, annotator=rater)  # loads the sampler
        for i in range(30):
            started = time.perf_counter()
            assignment = services.assignment_next(project=project, annotator=rater)
            services.assignment_skip(assignment_id=assignment.pk, annotator=rater)
            timings.append(time.perf_counter() - started)
            del i
    assert statistics.median(timings) < 0.030, timings


@pytest.mark.django_db
def test_sampling_is_set_on_the_new_project_form_and_the_dashboard(admin_user, client):
    client.force_login(admin_user)
    made = client.post(
        "/projects/new/",
        {
            "slug": "formed",
            "kind": "rating",
            "overlap": 5,
            "visibility": "members",
            "public_quota": 200,
            "public_rate_per_minute": 60,
            "rating_sampling": "adaptive",
            "rating_top_k": 7,
        },
    )
    assert made.status_code == 302, made.content.decode()[:2000]
    project = Project.objects.get(slug="formed")
    assert (project.rating_sampling, project.rating_top_k) == ("adaptive", 7)
    settings_form = {
        "instructions": "",
        "overlap": 5,
        "visibility": "members",
        "public_quota": 200,
        "public_rate_per_minute": 60,
        "rating_sampling": "uniform",
        "rating_top_k": 3,
    }
    assert client.post("/projects/formed/dashboard/", settings_form).status_code == 302
    project.refresh_from_db()
    assert (project.rating_sampling, project.rating_top_k) == ("uniform", 3)
    refused = client.post("/projects/formed/dashboard/", {**settings_form, "rating_top_k": 0})
    assert refused.status_code == 200  # the form again, with its error
    assert "greater than or equal to 1" in refused.content.decode()
    project.refresh_from_db()
    assert project.rating_top_k == 3


@pytest.mark.django_db
def test_adaptive_learns_from_the_projects_own_ratings(researcher, make_user, api_client_for):
    """No imported votes: the project's own ratings so far (counted by `ResponseRatingCount`) make the last
    three captions the contenders for the top 2, and the next raters get those."""
    from annotation.models import Rating
    from annotation.services.preference_pairs import rating_counts_recount

    raters = [make_user(f"new-rater-{i}") for i in range(12)]
    project = rating_project(researcher, raters, captions=12, overlap=1000, rating_sampling="adaptive", rating_top_k=2)
    earlier = [make_user(f"earlier-{i}") for i in range(16)]
    captions = list(Response.objects.filter(project=project).order_by("position"))
    Rating.objects.bulk_create(
        [
            Rating(
                item_id=caption.item_id,
                response=caption,
                annotator=person,
                level=(2 if (k + p) % 4 else 1) if caption.position >= 9 else 0,
                client_request_id=f"earlier-{k}-{p}",
            )
            for k, caption in enumerate(captions)
            for p, person in enumerate(earlier)
        ]
    )
    rating_counts_recount(item_ids=[captions[0].item_id])
    got = Counter()
    for rater in raters:
        task = next_task(api_client_for(rater))
        got[Response.objects.get(pk=task["response_id"]).position] += 1
    assert sum(got[k] for k in (9, 10, 11)) >= 10, got  # the last three: not what an id order would give


@pytest.mark.django_db
def test_raters_asking_at_once_get_different_captions(researcher, make_user, api_client_for):
    """Leases not answered yet count as provisional votes, so eight raters who ask one after another (none
    has answered) are spread over the captions rather than all given the same one."""
    raters = [make_user(f"at-once-{i}") for i in range(8)]
    rating_project(researcher, raters, captions=20, overlap=1000, rating_sampling="adaptive", rating_top_k=3)
    shown = [next_task(api_client_for(rater))["response_id"] for rater in raters]
    assert len(set(shown)) == 8, shown
