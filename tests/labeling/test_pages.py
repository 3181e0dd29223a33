"""Pages: who may open which, and what the shells carry for their modules."""

import pytest

pytestmark = pytest.mark.django_db


def pages(project):
    return {
        "annotate": f"/projects/{project.pk}/annotate/",
        "grid": f"/projects/{project.pk}/grid/",
        "settings": f"/projects/{project.pk}/settings/",
        "batches": f"/projects/{project.pk}/batches/",
    }


def test_pages_send_anonymous_visitors_to_the_login_page(project, client):
    for url in pages(project).values():
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_home_lists_projects_by_role_with_their_pages(project, alice, bob, client):
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert "Projects you own" in html and "Anime vs photo" in html
    assert pages(project)["settings"] in html and pages(project)["batches"] in html
    client.force_login(bob)
    html = client.get("/").content.decode()
    assert "Projects you label" in html and "Projects you own" not in html
    assert pages(project)["annotate"] in html and pages(project)["grid"] in html
    assert pages(project)["settings"] not in html


def test_annotators_open_the_labeling_pages_but_not_the_owner_pages(project, bob, client):
    client.force_login(bob)
    urls = pages(project)
    for name in ("annotate", "grid"):
        response = client.get(urls[name])
        assert response.status_code == 200
        assert f'data-project="{project.pk}"' in response.content.decode()
    for name in ("settings", "batches"):
        assert client.get(urls[name]).status_code == 403


def test_owners_open_every_page(project, alice, client):
    client.force_login(alice)
    for url in pages(project).values():
        response = client.get(url)
        assert response.status_code == 200
        assert 'name="csrf-token"' in response.content.decode()


def test_a_non_member_is_refused_and_an_unknown_project_is_404(project, mallory, client):
    client.force_login(mallory)
    for url in pages(project).values():
        assert client.get(url).status_code == 403
    assert client.get("/projects/999999/annotate/").status_code == 404


def test_the_grid_page_size_is_one_of_the_offered_sizes(project, bob, client):
    client.force_login(bob)
    assert 'data-size="24"' in client.get(f"{pages(project)['grid']}?size=24").content.decode()
    assert 'data-size="48"' in client.get(f"{pages(project)['grid']}?size=5000").content.decode()


def test_the_page_modules_are_found_by_the_static_files_finders():
    from django.contrib.staticfiles import finders

    for name in ("api.js", "annotate.js", "grid.js", "settings.js", "batches.js", "winnow.css"):
        assert finders.find(name), name
