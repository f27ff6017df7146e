"""The task queue through the API: overlap, never twice, leases that expire, skip, reopened tasks behind
an annotator's cursor, idempotent submits, amends, and many annotators asking at once."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotation import services
from annotation.models import Assignment, AssignmentStatus, Item, PairwiseJudgment, Rating, Response, SubmitRequest

pytestmark = [pytest.mark.production_path]


def make_project(researcher, members, *, kind="pairwise", items=4, responses=2, overlap=1, slug=None, **options):
    project = services.project_create(
        slug=slug or f"q-{kind}", kind=kind, created_by=researcher, overlap=overlap, **options
    )
    for user in members:
        services.project_member_add(project=project, user=user)
    made = Item.objects.bulk_create(
        [Item(project=project, external_id=f"i{i}", prompt=f"prompt {i}") for i in range(items)]
    )
    Response.objects.bulk_create(
        [
            Response(item=item, position=k, text=f"{item.external_id} answer {k}")
            for item in made
            for k in range(responses)
        ]
    )
    return project


def next_task(client, slug):
    response = client.post(f"/api/v1/projects/{slug}/tasks/next/")
    assert response.status_code in (200, 204), response.content
    return None if response.status_code == 204 else response.json()


def submit(client, slug, task, **answer):
    body = {"client_request_id": answer.pop("client_request_id", uuid.uuid4().hex), **answer}
    return client.post(f"/api/v1/projects/{slug}/tasks/{task['assignment_id']}/submit/", body, format="json")


@pytest.fixture
def trio(make_user):
    return [make_user(f"queue-annotator-{i}") for i in range(3)]


@pytest.mark.django_db
def test_overlap_gives_each_task_to_n_distinct_annotators_and_nobody_twice(researcher, trio, api_client_for):
    """With overlap 2 and three annotators every task ends with exactly two judgments by different people,
    and each annotator is told when nothing is left for them."""
    project = make_project(researcher, trio, items=3, overlap=2)
    clients = [api_client_for(user) for user in trio]
    seen: dict[int, list[int]] = {}
    progress = True
    while progress:
        progress = False
        for index, client in enumerate(clients):
            task = next_task(client, project.slug)
            if task is not None:
                assert submit(client, project.slug, task, choice="a").status_code == 201
                seen.setdefault(task["item_id"], []).append(index)
                progress = True
    assert sorted(len(who) for who in seen.values()) == [2, 2, 2]
    assert all(len(set(who)) == 2 for who in seen.values())
    empty = clients[0].post(f"/api/v1/projects/{project.slug}/tasks/next/")
    assert empty.status_code == 204 and empty["X-Queue-Reason"] in ("all_done", "done_for_you")
    assert Item.objects.filter(project=project, done_count=2).count() == 3


@pytest.mark.django_db
def test_asking_again_gives_back_the_task_held_and_renews_its_lease(researcher, annotator, api_client_for):
    """A reload does not take a second task: the lease held comes back, with a later expiry."""
    project = make_project(researcher, [annotator])
    client = api_client_for(annotator)
    first = next_task(client, project.slug)
    again = next_task(client, project.slug)
    assert again["assignment_id"] == first["assignment_id"]
    assert again["lease_expires_at"] >= first["lease_expires_at"]
    assert Assignment.objects.filter(annotator=annotator).count() == 1


@pytest.mark.django_db
def test_an_abandoned_task_returns_when_its_lease_expires(researcher, trio, api_client_for):
    """An expired lease goes to the next annotator; its first holder may then not submit it, and is not
    given it again."""
    first, second, _ = trio
    project = make_project(researcher, trio, items=1)
    task = next_task(api_client_for(first), project.slug)
    assert next_task(api_client_for(second), project.slug) is None
    Assignment.objects.filter(pk=task["assignment_id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    taken = next_task(api_client_for(second), project.slug)
    assert taken is not None and taken["item_id"] == task["item_id"]
    assert Assignment.objects.get(pk=task["assignment_id"]).status == AssignmentStatus.EXPIRED
    late = submit(api_client_for(first), project.slug, task, choice="a")
    assert late.status_code == 400 and "expired" in late.json()["message"]
    assert next_task(api_client_for(first), project.slug) is None


@pytest.mark.django_db
def test_a_late_submit_of_an_expired_lease_is_kept_while_the_slot_is_free(researcher, trio, api_client_for):
    """If nobody took the task meanwhile, an answer after the lease ran out (and was reclaimed) still counts,
    once."""
    first = trio[0]
    project = make_project(researcher, trio, items=2)
    task = next_task(api_client_for(first), project.slug)
    Assignment.objects.filter(pk=task["assignment_id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.leases_reclaim(project=project) == 1
    assert Item.objects.get(pk=task["item_id"]).is_open
    assert submit(api_client_for(first), project.slug, task, choice="b").status_code == 201
    item = Item.objects.get(pk=task["item_id"])
    assert (item.done_count, item.taken_count, item.is_open) == (1, 1, False)


@pytest.mark.django_db
def test_a_task_that_reopens_behind_an_annotator_is_offered_to_them(researcher, trio, api_client_for):
    """A task held by someone else when an annotator passed it comes to that annotator once it is free
    again (skipped by its holder), before tasks further on."""
    first, second, _ = trio
    project = make_project(researcher, trio, items=3)
    held = next_task(api_client_for(first), project.slug)
    passed = next_task(api_client_for(second), project.slug)
    assert passed["item_id"] > held["item_id"]
    assert submit(api_client_for(second), project.slug, passed, choice="a").status_code == 201
    skipped = api_client_for(first).post(f"/api/v1/projects/{project.slug}/tasks/{held['assignment_id']}/skip/")
    assert skipped.status_code == 200
    assert next_task(api_client_for(second), project.slug)["item_id"] == held["item_id"]
    # The one who skipped it never gets it again.
    assert next_task(api_client_for(first), project.slug)["item_id"] not in (held["item_id"], passed["item_id"])


@pytest.mark.django_db
def test_raising_the_overlap_reopens_finished_tasks_for_those_who_passed_them(researcher, trio, api_client_for):
    """Tasks finished under overlap 1 go back to the queue when the overlap becomes 2."""
    first, second, _ = trio
    project = make_project(researcher, trio, items=2)
    client = api_client_for(first)
    for _ in range(2):
        assert submit(client, project.slug, next_task(client, project.slug), choice="a").status_code == 201
    other = api_client_for(second)
    assert next_task(other, project.slug) is None
    services.project_overlap_set(project=project, overlap=2)
    assert next_task(other, project.slug) is not None
    assert next_task(client, project.slug) is None


@pytest.mark.django_db
def test_rating_tasks_are_captions_and_nobody_rates_one_twice(researcher, annotator, api_client_for):
    """In a rating project each caption is a task: five captions of one cartoon give five ratings, all
    different captions, then the queue is empty."""
    project = make_project(researcher, [annotator], kind="rating", items=1, responses=5, overlap=3)
    client = api_client_for(annotator)
    rated = []
    while (task := next_task(client, project.slug)) is not None:
        assert len(task["responses"]) == 1 and task["response_id"] == task["responses"][0]["id"]
        assert submit(client, project.slug, task, level=len(rated) % 3).status_code == 201
        rated.append(task["response_id"])
    assert len(rated) == len(set(rated)) == 5
    assert Rating.objects.filter(annotator=annotator).count() == 5
    assert Item.objects.get(project=project).done_count == 5
    bad = submit(client, project.slug, {"assignment_id": Assignment.objects.first().pk}, level=3)
    assert bad.status_code == 400


@pytest.mark.django_db
def test_a_repeated_submit_is_stored_once_even_after_an_amend(researcher, annotator, api_client_for):
    """The same request id twice stores one answer; a later amend (new id) changes it; replaying the first
    request afterwards changes nothing back."""
    project = make_project(researcher, [annotator], items=1)
    client = api_client_for(annotator)
    task = next_task(client, project.slug)
    first = submit(client, project.slug, task, choice="a", client_request_id="r-1")
    twice = submit(client, project.slug, task, choice="a", client_request_id="r-1")
    assert first.status_code == twice.status_code == 201 and first.json()["id"] == twice.json()["id"]
    amend = submit(client, project.slug, task, choice="b", reason="looked again", client_request_id="r-2")
    assert amend.status_code == 201 and amend.json()["id"] == first.json()["id"]
    replay = submit(client, project.slug, task, choice="a", client_request_id="r-1")
    assert replay.status_code == 201
    judgment = PairwiseJudgment.objects.get()
    assert (judgment.choice, judgment.reason) == ("b", "looked again")
    assert Item.objects.get(pk=task["item_id"]).done_count == 1
    assert SubmitRequest.objects.count() == 2
    reused = submit(client, project.slug, {"assignment_id": 10**9}, choice="a", client_request_id="r-1")
    assert reused.status_code == 400


@pytest.mark.django_db
def test_going_back_shows_my_previous_answers_in_turn(researcher, annotator, api_client_for):
    """`previous` walks back through my own submitted tasks, newest first, each with its stored answer."""
    project = make_project(researcher, [annotator], items=3)
    client = api_client_for(annotator)
    done = []
    for choice in ("a", "b", "tie"):
        task = next_task(client, project.slug)
        assert submit(client, project.slug, task, choice=choice, strength=2).status_code == 201
        done.append((task["assignment_id"], choice))
    url = f"/api/v1/projects/{project.slug}/tasks/previous/"
    latest = client.get(url).json()
    assert (latest["assignment_id"], latest["answer"]["choice"]) == done[2]
    before = client.get(url, {"before": latest["assignment_id"]}).json()
    assert (before["assignment_id"], before["answer"]["choice"]) == done[1]
    assert before["answer"]["strength"] == 2
    first = client.get(url, {"before": before["assignment_id"]}).json()
    assert first["assignment_id"] == done[0][0]
    assert client.get(url, {"before": first["assignment_id"]}).status_code == 204


@pytest.mark.django_db
def test_a_submitted_task_cannot_be_skipped_and_a_skipped_one_cannot_be_answered(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], items=2)
    client = api_client_for(annotator)
    task = next_task(client, project.slug)
    assert submit(client, project.slug, task, choice="a").status_code == 201
    refused = client.post(f"/api/v1/projects/{project.slug}/tasks/{task['assignment_id']}/skip/")
    assert refused.status_code == 400
    other = next_task(client, project.slug)
    assert client.post(f"/api/v1/projects/{project.slug}/tasks/{other['assignment_id']}/skip/").status_code == 200
    assert submit(client, project.slug, other, choice="a").status_code == 400
    assert Item.objects.get(pk=other["item_id"]).taken_count == 0


@pytest.mark.django_db(transaction=True)
def test_annotators_asking_at_once_never_share_a_slot(researcher, make_user):
    """Eight annotators take tasks concurrently (a barrier starts each round together) from a project with
    overlap 2: no task is held or answered by more than two people, and nobody holds a task twice."""
    users = [make_user(f"crowd-{i}") for i in range(8)]
    project = make_project(researcher, users, items=12, overlap=2, slug="q-concurrent")
    barrier = threading.Barrier(len(users))
    errors: list[BaseException] = []

    def work(user) -> None:
        from rest_framework.authtoken.models import Token
        from rest_framework.test import APIClient

        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
            for _ in range(4):
                barrier.wait(timeout=60)
                task = next_task(client, project.slug)
                if task is not None:
                    assert submit(client, project.slug, task, choice="a").status_code == 201
        except BaseException as error:  # noqa: BLE001 — reported by the test thread below
            errors.append(error)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    per_item: dict[int, list[int]] = {}
    for item_id, annotator_id in Assignment.objects.filter(project=project).values_list("item_id", "annotator_id"):
        per_item.setdefault(item_id, []).append(annotator_id)
    assert all(len(who) == len(set(who)) <= 2 for who in per_item.values())
    assert sum(len(who) for who in per_item.values()) == 24, "every slot of the 12 tasks was taken once"
    for item in Item.objects.filter(project=project):
        assert (item.done_count, item.taken_count, item.is_open) == (2, 2, False)
    assert PairwiseJudgment.objects.count() == 24


@pytest.mark.django_db(transaction=True)
def test_the_same_submit_sent_twice_at_once_is_stored_once(researcher, annotator):
    """Two copies of one request racing each other store a single judgment and count the task once."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    project = make_project(researcher, [annotator], items=1, slug="q-race")
    token = Token.objects.create(user=annotator).key
    opener = APIClient()
    opener.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    task = next_task(opener, project.slug)
    barrier = threading.Barrier(2)
    answers: list[int] = []

    def send() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        try:
            barrier.wait(timeout=30)
            answers.append(submit(client, project.slug, task, choice="b", client_request_id="double").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [201, 201]
    assert PairwiseJudgment.objects.count() == 1
    assert Item.objects.get(pk=task["item_id"]).done_count == 1


@pytest.mark.django_db(transaction=True)
def test_two_annotators_submitting_one_item_at_once_both_count_in_its_pairs(researcher, make_user):
    """With overlap 2, two simultaneous judgments of one item end in one pair that counts both votes once
    the stale pairs are re-derived (as a snapshot does)."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from annotation.models import PreferencePair

    users = [make_user("same-item-1"), make_user("same-item-2")]
    project = make_project(researcher, users, items=1, overlap=2, slug="q-same-item")
    clients, tasks = [], []
    for user in users:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        clients.append(client)
        tasks.append(next_task(client, project.slug))
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def send(client, task) -> None:
        ids = [r["id"] for r in task["responses"]]
        choice = "a" if ids[0] == min(ids) else "b"  # both prefer the same answer, whatever the order shown
        try:
            barrier.wait(timeout=30)
            codes.append(submit(client, project.slug, task, choice=choice).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=pair) for pair in zip(clients, tasks, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert codes == [201, 201]
    services.preference_pairs_refresh_stale(project=project)
    pair = PreferencePair.objects.get(item__project=project)
    assert (pair.n_votes, pair.agreement) == (2, 1.0)
