"""Issue 16, item 9: production settings. The contract: with DJANGO_SECRET_KEY set and DJANGO_ALLOWED_HOSTS naming
a real host, `manage.py check --deploy` prints no warnings (HTTPS switches on by default outside the demo and
DEBUG, each with its environment switch); every response carries a Content-Security-Policy that allows no inline
script, and no page has one; failed logins are throttled per username and address."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "frontend" / "templates"
EVENT_HANDLER = re.compile(
    r"\son(?:click|dblclick|load|error|change|submit|input|key[a-z]+|mouse[a-z]+|pointer[a-z]+|focus|blur|"
    r"scroll|resize|drag[a-z]*|drop|touch[a-z]+|wheel|contextmenu|(?:before)?unload|animation[a-z]+)\s*="
)


def _check_deploy(tmp_path, **env):
    """`manage.py check --deploy` as a production start runs it: base settings, only the given environment."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOUPE_", "DJANGO_")) and key not in ("DATABASE_URL", "CELERY_BROKER_URL")
    }
    clean.update(
        DJANGO_SETTINGS_MODULE="loupe.settings.base",
        LOUPE_DATA_DIR=str(tmp_path / "data"),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="loupe.example.org",
        OMP_NUM_THREADS="1",
        **env,
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def test_check_deploy_is_clean_with_a_secret_key_and_a_real_host(tmp_path):
    code, output = _check_deploy(tmp_path)
    assert code == 0, output
    assert "System check identified no issues (0 silenced)." in output, output
    assert "WARNING" not in output


@pytest.mark.parametrize(
    ("switch", "warning"),
    [
        ({"LOUPE_HTTPS": "0"}, "security.W004"),  # all of HTTPS off: a deployment on plain HTTP
        ({"DJANGO_SECURE_SSL_REDIRECT": "0"}, "security.W008"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"DJANGO_SESSION_COOKIE_SECURE": "0"}, "security.W012"),
        ({"DJANGO_CSRF_COOKIE_SECURE": "0"}, "security.W016"),
    ],
)
def test_each_https_setting_has_its_switch(tmp_path, switch, warning):
    code, output = _check_deploy(tmp_path, **switch)
    assert code == 0 and warning in output, output


def test_the_demo_serves_plain_http(tmp_path):
    """The embedded demo runs on http://127.0.0.1 (no certificate): no redirect, no secure-only cookies."""
    code, output = _check_deploy(tmp_path, LOUPE_DEMO="1")
    assert code == 0 and "security.W008" in output and "security.W012" in output, output


def test_no_template_has_an_inline_script_or_event_handler():
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and 'type="application/json"' not in tag:
                offenders.append(f"{template.relative_to(ROOT)}: {tag}")
        offenders += [f"{template.relative_to(ROOT)}: {m}" for m in re.findall(EVENT_HANDLER, text)]
        offenders += [f"{template.relative_to(ROOT)}: javascript: URL" for _ in re.findall(r"javascript:", text)]
    assert offenders == []


@pytest.mark.django_db
def test_pages_and_the_api_docs_carry_a_policy_without_inline_scripts(admin_user, client):
    client.force_login(admin_user)
    for url in ("/login/", "/", "/admin/", "/api/v1/docs/", "/api/v1/redoc/"):
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src")).split()
        assert script_src == ["script-src", "'self'"], policy
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    docs = client.get("/api/v1/docs/").content.decode()
    assert not [tag for tag in re.findall(r"<script\b[^>]*>", docs) if "src=" not in tag], docs
    script_url = re.search(r'<script src="([^"]*script=[^"]*)"', docs).group(1).replace("&amp;", "&")
    script = client.get(script_url)
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


@pytest.fixture
def fresh_login_counts():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_failed_logins_block_the_username_from_that_address(make_user, settings, fresh_login_counts):
    settings.LOUPE_LOGIN_MAX_FAILURES = 3
    make_user("rita")
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        wrong = attacker.post("/login/", {"username": "rita", "password": "guess"})
        assert wrong.status_code == 200 and "didn't match" in wrong.content.decode()
    blocked = attacker.post("/login/", {"username": "rita", "password": "rita-password"})  # even the right one
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 800
    assert "Too many failed logins for rita from your address: try again in 15 minutes." in blocked.content.decode()
    assert "_auth_user_id" not in attacker.session
    admin_login = attacker.post("/admin/login/", {"username": "RITA", "password": "rita-password"})
    assert admin_login.status_code == 429  # the admin's form too; usernames are compared case-blind

    rita = Client(REMOTE_ADDR="198.51.100.4")  # rita herself, from her own address
    assert rita.post("/login/", {"username": "rita", "password": "rita-password"}).status_code == 302
    other = Client(REMOTE_ADDR="203.0.113.9")
    make_user("sam")
    assert other.post("/login/", {"username": "sam", "password": "sam-password"}).status_code == 302


@pytest.mark.django_db
def test_a_successful_login_clears_the_count(make_user, settings, fresh_login_counts):
    settings.LOUPE_LOGIN_MAX_FAILURES = 3
    make_user("rita")
    browser = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(2):
        browser.post("/login/", {"username": "rita", "password": "typo"})
    assert browser.post("/login/", {"username": "rita", "password": "rita-password"}).status_code == 302
    browser.logout()
    for _ in range(2):
        browser.post("/login/", {"username": "rita", "password": "typo"})
    assert browser.post("/login/", {"username": "rita", "password": "rita-password"}).status_code == 302


@pytest.mark.django_db
def test_the_window_ends_the_block(make_user, settings, fresh_login_counts, monkeypatch):
    from loupe import login_throttle

    settings.LOUPE_LOGIN_MAX_FAILURES = 2
    make_user("rita")
    browser = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(2):
        browser.post("/login/", {"username": "rita", "password": "typo"})
    assert browser.post("/login/", {"username": "rita", "password": "rita-password"}).status_code == 429
    later = login_throttle.time.time() + settings.LOUPE_LOGIN_WINDOW_SECONDS + 1
    monkeypatch.setattr(login_throttle.time, "time", lambda: later)
    assert browser.post("/login/", {"username": "rita", "password": "rita-password"}).status_code == 302
