"""Issue 16, item 9: every page works under the Content-Security-Policy (scripts from Loupe's origin only). Chromium
reports each blocked script, style or image as a `securitypolicyviolation` event and a console error: a page
that still had an inline script, an `on…=` handler or `eval` would show one here."""

import pytest
from django.utils import timezone

from annotation.models import JobStatus
from evaluation.models import BenchmarkRun
from tests.annotation.feedback import judge, people, project_with_items, refresh, responses_of
from training.models import RunMetric, TrainingRun

WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""


@pytest.mark.django_db(transaction=True)
def test_every_page_runs_under_the_policy_without_a_violation(
    page, live_server, login, admin_user, researcher, project_with, screenshot_dir
):
    from annotation import services

    project = project_with(
        "pairwise", [{"external_id": "q1", "prompt": "Which is right?", "responses": [{"text": "a"}, {"text": "b"}]}]
    )
    services.project_member_add(project=project, user=admin_user, role="manager")
    judged = project_with_items("csp-judged", "pairwise", {"i0": ["good", "bad"]}, created_by=researcher)
    (person,) = people("csp-judge", 1)
    judge(*responses_of(judged, "i0"), person, "a")
    refresh(judged)
    snapshot = services.snapshot_create(project=judged, created_by=None)
    run = TrainingRun.objects.create(
        method="dpo", base_model="tiny", snapshot=snapshot, status="running", max_steps=10, step=2,
        heartbeat_at=timezone.now(), started_at=timezone.now(),
    )  # fmt: skip
    RunMetric.objects.create(run=run, step=1, values={"loss": 0.7})
    RunMetric.objects.create(run=run, step=2, values={"loss": 0.6})
    benchmark = BenchmarkRun.objects.create(benchmark="pope", config={}, status=JobStatus.RUNNING)

    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(WATCH_VIOLATIONS)
    login(page, admin_user)
    pages = [
        "/",
        f"/projects/{project.slug}/",
        f"/projects/{project.slug}/annotate/",
        f"/projects/{project.slug}/dashboard/",
        f"/projects/{project.slug}/datasets/",
        f"/projects/{project.slug}/labeler/",
        "/projects/new/",
        "/runs/",
        f"/runs/{run.pk}/",
        "/models/",
        "/leaderboard/",
        f"/benchmarks/{benchmark.pk}/",
        "/admin/",
        "/admin/annotation/project/",
        "/api/v1/docs/",
        "/api/v1/redoc/",
    ]
    seen = {}
    for path in pages:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_load_state("networkidle")
        seen[path] = page.evaluate("window.__violations")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    page.wait_for_selector("#chart-loss .main-svg", timeout=10_000)  # plotly drew the curves
    page.screenshot(path=str(screenshot_dir / "csp-run-page.png"))
    page.goto(f"{live_server.url}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=10_000)  # its start-up script is a file, and ran
    page.screenshot(path=str(screenshot_dir / "csp-api-docs.png"))
    seen["docs again"] = page.evaluate("window.__violations")
    # Redoc's page asks for Google's fonts and Redoc's logo on the internet: the policy keeps them out (Loupe
    # runs offline; the page works without them). Anything else blocked (an inline script, eval, a file of
    # Loupe's own) is a page the policy broke.
    outside = ("https://fonts.googleapis.com/", "https://cdn.redoc.ly/")
    blocked = {
        path: [v for v in found if not (path == "/api/v1/redoc/" and v.split()[1].startswith(outside))]
        for path, found in seen.items()
    }
    assert {path: found for path, found in blocked.items() if found} == {}
    csp_errors = [e for e in errors if "Content Security Policy" in e or "Content-Security-Policy" in e]
    assert [e for e in csp_errors if not any(host in e for host in outside)] == []
