"""The project page leads managers to the dashboard and the datasets page, and annotators only to work."""

import pytest

pytestmark = pytest.mark.django_db


def test_managers_see_dashboard_and_datasets_links_and_annotators_do_not(
    client, pairwise_project, researcher, annotator
):
    """A manager's project page links the dashboard and datasets pages; an annotator's links neither."""
    client.force_login(researcher)
    page = client.get(f"/projects/{pairwise_project.slug}/").content.decode()
    assert f'href="/projects/{pairwise_project.slug}/dashboard/"' in page
    assert f'href="/projects/{pairwise_project.slug}/datasets/"' in page
    client.force_login(annotator)
    page = client.get(f"/projects/{pairwise_project.slug}/").content.decode()
    assert "/dashboard/" not in page and "/datasets/" not in page
    assert f'href="/projects/{pairwise_project.slug}/annotate/"' in page
