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


def test_a_non_member_gets_404_as_for_a_project_that_does_not_exist(project, mallory, client):
    client.force_login(mallory)
    for url in [*pages(project).values(), *owner_pages(project).values(), f"/projects/{project.pk}/review/",
                f"/projects/{project.pk}/training/"]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert "There is nothing here" in response.content.decode()
    assert client.get("/projects/999999/annotate/").status_code == 404


def test_the_grid_page_size_is_one_of_the_offered_sizes(project, bob, client):
    client.force_login(bob)
    assert 'data-size="24"' in client.get(f"{pages(project)['grid']}?size=24").content.decode()
    assert 'data-size="48"' in client.get(f"{pages(project)['grid']}?size=5000").content.decode()


def test_the_page_modules_are_found_by_the_static_files_finders():
    from django.contrib.staticfiles import finders

    for name in ("api.js", "annotate.js", "grid.js", "settings.js", "batches.js", "winnow.css"):
        assert finders.find(name), name


def owner_pages(project):
    return {name: f"/projects/{project.pk}/{name}/" for name in ("members", "tasks", "quality", "exports", "webhooks")}


def test_only_owners_open_the_owner_pages_and_other_members_get_a_styled_403(project, alice, bob, carol, mallory, client):
    client.force_login(alice)
    for url in owner_pages(project).values():
        response = client.get(url)
        assert response.status_code == 200, url
        assert f'data-project="{project.pk}"' in response.content.decode()
    for who in (bob, carol):
        client.force_login(who)
        for url in owner_pages(project).values():
            response = client.get(url)
            assert response.status_code == 403, url
            main = response.content.decode().split("<main>")[1]
            assert "You can't open this page" in main and "Back to your projects" in main and "/api/" not in main


def test_an_unknown_project_gets_a_styled_404(alice, client):
    client.force_login(alice)
    response = client.get("/projects/999999/tasks/")
    assert response.status_code == 404
    assert "There is nothing here" in response.content.decode()


def test_anyone_signed_in_opens_the_new_project_page_with_the_models_defaults(mallory, client):
    assert client.get("/projects/new/").status_code == 302
    client.force_login(mallory)
    html = client.get("/projects/new/").content.decode()
    assert 'id="new-project"' in html and 'name="max_error_rate"' in html and 'value="0.02"' in html
    assert "/projects/new/" in client.get("/").content.decode()


def test_the_project_navigation_links_every_owner_page(project, alice, client):
    client.force_login(alice)
    html = client.get(f"/projects/{project.pk}/batches/").content.decode()
    for url in owner_pages(project).values():
        assert f'href="{url}"' in html


def test_the_new_page_modules_are_found_by_the_static_files_finders():
    from django.contrib.staticfiles import finders

    for name in ("new_project.js", "members.js", "tasks.js", "quality.js", "exports.js", "webhooks.js", "taxonomy.js",
                 "charts.js", "stats.js", "help.js", "page.js", "api-docs.css", "favicon.svg"):
        assert finders.find(name), name
