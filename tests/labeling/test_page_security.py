"""Pages carry a Content-Security-Policy that runs only this server's script files, are never framed,
and send same-origin referrers; templates hold no inline script or style; the API docs need no internet."""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_pages_send_the_security_headers(project, alice, client):
    client.force_login(alice)
    for url in ("/", "/login/", f"/projects/{project.pk}/batches/", "/projects/new/", "/api/docs/"):
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Content-Type-Options"] == "nosniff"


def test_no_template_holds_inline_script_style_or_event_handlers():
    offences = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag:
                offences.append(f"{path.name}: inline {tag}")
        if re.search(r"<style\b", text):
            offences.append(f"{path.name}: <style>")
        if re.search(r"\sstyle\s*=", text):
            offences.append(f"{path.name}: style attribute")
        if re.search(r"\son[a-z]+\s*=", text):
            offences.append(f"{path.name}: event handler attribute")
    assert not offences, offences


def test_the_api_docs_load_only_files_from_this_server(alice, client):
    client.force_login(alice)
    html = client.get("/api/docs/").content.decode()
    assert "http://" not in html and "https://" not in html, "the docs page must not reach out to a CDN"
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    statics = [s for s in sources if s.startswith("/static/")]
    assert any("swagger-ui-bundle.js" in s for s in statics)
    for source in statics:
        assert finders.find(source.removeprefix("/static/")), source
    script = next(s for s in sources if "script=" in s)
    response = client.get(script)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in response.content.decode()
