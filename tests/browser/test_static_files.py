"""Static files as a deployment serves them: `collectstatic` with the production storage, then WhiteNoise (not
the test server's finders) in front of the pages. The run page's plotly.min.js comes gzipped under a hashed name
that the browser keeps, and the annotate pages' ES modules still load under their hashed names."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test.testcases import LiveServerThread
from django.test.utils import override_settings

from annotation import services
from loupe.settings import base as production_settings
from tests.training.conftest import build_pairs_snapshot
from training.models import JobStatus, RunMetric, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEN_YEARS = 10 * 365 * 24 * 3600  # WhiteNoise's max-age for files with a content hash in the name


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory) -> Path:
    """STATIC_ROOT after `manage.py collectstatic` with the storage production uses."""
    root = tmp_path_factory.mktemp("collected-static")
    with override_settings(STATIC_ROOT=root, STORAGES=production_settings.STORAGES):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


@pytest.fixture
def whitenoise_server(settings, collected_static) -> Iterator[str]:
    """A live server whose static files go through WhiteNoise from the collected folder, as under platform/web.py."""
    settings.STATIC_ROOT = collected_static
    settings.STORAGES = production_settings.STORAGES
    # The test live server answers /static/ from the finders before the middleware sees it: this one does not.
    server = LiveServerThread("127.0.0.1", static_handler=lambda handler: handler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    yield f"http://127.0.0.1:{server.port}"
    server.terminate()


def log_in(page, base_url: str, user) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", f"{user.username}-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def plotly_timing(page) -> dict:
    return page.evaluate(
        """() => {
            const entry = performance.getEntriesByType("resource").find((e) => e.name.includes("/plotly.min."));
            const navigation = performance.getEntriesByType("navigation")[0];
            return {
                url: entry.name, transferSize: entry.transferSize, encodedBodySize: entry.encodedBodySize,
                decodedBodySize: entry.decodedBodySize, domContentLoaded: navigation.domContentLoadedEventEnd,
            };
        }"""
    )


def test_collectstatic_writes_hashed_gzipped_files_and_only_plotly_from_its_wheel(collected_static):
    """Every file gets a hashed copy and a gzip; module imports name the hashed files; the plotly wheel gives
    plotly.min.js and nothing else (not its 5 MB widget bundle)."""
    manifest = json.loads((collected_static / "staticfiles.json").read_text())["paths"]
    plotly = manifest["vendor/plotly/plotly.min.js"]
    assert plotly != "vendor/plotly/plotly.min.js"
    assert (collected_static / f"{plotly}.gz").stat().st_size < 2_000_000
    assert sorted(p.name for p in (collected_static / "vendor" / "plotly").iterdir()) == sorted(
        [plotly.rsplit("/", 1)[1], plotly.rsplit("/", 1)[1] + ".gz", "plotly.min.js", "plotly.min.js.gz"]
    )
    pairwise = (collected_static / manifest["loupe/annotate_pairwise.js"]).read_text()
    assert f'from "./{manifest["loupe/annotate.js"].rsplit("/", 1)[1]}"' in pairwise


def test_the_run_page_gets_plotly_gzipped_and_cached(
    laptop_page, whitenoise_server, admin_user, tmp_path, screenshot_dir
):
    """The run page's plotly.min.js (4.8 MB) travels gzipped (under 2 MB), is marked immutable (cached for years), and
    a second visit takes it from the browser's cache; the curves are drawn."""
    snapshot = build_pairs_snapshot(slug="static-run", image_dir=tmp_path / "images")
    run = TrainingRun.objects.create(
        method="dpo", base_model="/models/tiny", snapshot=snapshot, status=JobStatus.SUCCEEDED, step=2, max_steps=2
    )
    for step in (1, 2):
        RunMetric.objects.create(run=run, step=step, values={"loss": 0.7 - 0.1 * step})
    page = laptop_page
    log_in(page, whitenoise_server, admin_user)
    responses = []
    page.on("response", lambda response: responses.append(response) if "/plotly.min." in response.url else None)
    page.goto(f"{whitenoise_server}/runs/{run.pk}/")
    page.wait_for_selector("#chart-loss .main-svg")

    (plotly,) = responses
    headers = plotly.all_headers()
    assert headers["content-encoding"] == "gzip"
    assert f"max-age={TEN_YEARS}" in headers["cache-control"] and "immutable" in headers["cache-control"]
    first = plotly_timing(page)
    assert first["decodedBodySize"] > 4_000_000 and first["encodedBodySize"] < 2_000_000
    page.screenshot(path=str(screenshot_dir / "static-run-page.png"))

    page.goto(f"{whitenoise_server}/runs/{run.pk}/")
    page.wait_for_function("() => window.Plotly !== undefined")
    second = plotly_timing(page)
    assert second["url"] == first["url"]
    assert second["transferSize"] == 0, "a second visit fetched plotly.min.js again"
    print(f"DOMContentLoaded: first visit {first['domContentLoaded']:.0f} ms, then {second['domContentLoaded']:.0f} ms")


def test_the_pairwise_page_works_from_hashed_modules(
    laptop_page, whitenoise_server, pairwise_project, shapes_import, annotator
):
    """annotate_pairwise.<hash>.js imports annotate.<hash>.js and api.<hash>.js: the task shows and a key
    stores the answer."""
    services.items_import(project=pairwise_project, path=shapes_import)
    page = laptop_page
    scripts = []
    page.on("response", lambda response: scripts.append(response.url) if response.url.endswith(".js") else None)
    log_in(page, whitenoise_server, annotator)
    page.goto(f"{whitenoise_server}/projects/{pairwise_project.slug}/annotate/")
    page.wait_for_selector("#task:not([hidden])")
    names = sorted(url.rsplit("/", 1)[1].split(".")[0] for url in scripts)
    assert names == ["annotate", "annotate_pairwise", "api"]
    assert all(len(url.rsplit("/", 1)[1].split(".")) == 3 for url in scripts), scripts
    assignment = page.get_attribute("#task", "data-assignment")
    page.keyboard.press("1")
    page.wait_for_function(f"() => document.getElementById('task').dataset.assignment !== '{assignment}'")
    assert page.inner_text("#mine") == "1"
