"""The reviewers' app on a real network (#17): links that previewers cannot spend, expiry, logout,
revocation, aiohttp's own error pages, the run being served, and the whole flow in Chromium through
an nginx TLS proxy."""

import asyncio
import json
import os
import shutil
import subprocess
import time

import httpx
import pytest
from conftest import chromium_page, free_port, holdout_subprocess, login, wait_for_http


def _link_token(cli, name, *extra):
    code, out, _ = cli("review", "add-reviewer", name, "--languages", "en,ja", *extra)
    assert code == 0
    return out.strip().split("token=")[1]


def test_get_and_head_of_a_link_spend_nothing(server):
    _, tokens, url, _ = server
    for _ in range(3):  # a mail scanner, a link preview, the reviewer's first look
        assert httpx.get(url + "/login", params={"token": tokens["alice"]}).status_code == 200
        assert httpx.head(url + "/login", params={"token": tokens["alice"]}).status_code == 200
    landing = httpx.get(url + "/login", params={"token": tokens["alice"]})
    assert "Review question" not in landing.text and "Set-Cookie" not in landing.headers
    login(url, tokens["alice"])  # still valid: only the POST spends it


def test_an_expired_link_is_refused(server, cli):
    _, _, url, _ = server
    token = _link_token(cli, "dora", "--expires-hours", "0.0005")  # 1.8 seconds
    time.sleep(2.5)
    r = httpx.post(url + "/login", data={"token": token})
    assert r.status_code == 401 and "expired" in r.text
    for bad in ("0", "-1", "nan", "inf"):
        code, _, err = cli("review", "add-reviewer", "dora", "--expires-hours", bad)
        assert code == 2 and "--expires-hours" in err


def test_logout_revoke_and_reissue_end_sessions(server, cli):
    import re

    _, tokens, url, _ = server
    alice, bob, carol = (login(url, tokens[n]) for n in ("alice", "bob", "carol"))
    page = alice.get("/next", follow_redirects=True)
    csrf = re.search(r"name=csrf value=(\w+)", page.text).group(1)
    # a logout needs the page's token
    assert alice.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert alice.post("/logout", data={"csrf": csrf}).status_code == 200
    assert alice.get("/next").status_code == 401
    assert cli("review", "revoke", "bob")[0] == 0
    assert bob.get("/next").status_code == 401
    assert cli("review", "revoke", "nobody")[0] == 2
    new_token = _link_token(cli, "carol")  # a re-issued link
    assert carol.get("/next").status_code == 401
    # the old link is dead
    assert httpx.post(url + "/login", data={"token": tokens["carol"]}).status_code == 401
    assert login(url, new_token).get("/next").status_code == 303


def test_aiohttp_parser_errors_get_the_generic_page_and_log_no_request_text(reviewed):
    project, tokens = reviewed
    port = free_port()
    proc = holdout_subprocess(
        "--log-level", "debug", "review", "serve", "run", "--port", port, cwd=project.root
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/next")
        marker = "SECRET-REQUEST-TEXT-Ωμέγα-秘密"
        for r in (
            httpx.get(url + "/a/" + "y" * 9000 + httpx.URL("/" + marker).raw_path.decode()),
            httpx.get(
                url + "/next",
                headers={"Cookie": "holdout_review=" + "z" * 9000 + marker.encode().hex()},
            ),
            httpx.get(url + "/next", headers={"X-Long": "q" * 9000}),
        ):
            assert 400 <= r.status_code < 500
            assert r.headers["cache-control"] == "no-store" and r.headers["server"] == "holdout"
            assert (
                "Python" not in r.headers.get("server", "")
                and "content-security-policy" in r.headers
            )
            assert (
                "y" * 50 not in r.text
                and "z" * 50 not in r.text
                and "q" * 50 not in r.text
                and marker not in r.text
            )
        assert "Python" not in httpx.get(url + "/next").headers.get("server", "")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "refused a malformed request" in err
    assert (
        marker not in err
        and "yyyyyyyy" not in err
        and "zzzzzzzz" not in err
        and "Error handling request" not in err
    )


def test_a_reviewer_with_an_older_assignment_in_another_run_gets_this_runs_items(reviewed):
    project, tokens = reviewed
    with project.db() as db:
        db.execute(
            "INSERT INTO assignments (id, run_id, model, item_id, epoch, reviewer, reason, "
            "assigned) "
            "VALUES ('other-run-a1', 'other-run', 'm', 'x1', 0, 'alice', 'sample', 0)"
        )
    port = free_port()
    proc = holdout_subprocess("review", "serve", "run", "--port", port, cwd=project.root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/next")
        alice = login(url, tokens["alice"])
        where = alice.get("/next").headers["location"]
        assert where != "/a/other-run-a1" and alice.get(where).status_code == 200
        assert alice.get("/a/other-run-a1").status_code == 404  # not served here
    finally:
        proc.terminate()
        proc.wait(10)


def test_binding_beyond_loopback_without_tls_warns(reviewed):
    project, _ = reviewed
    port = free_port()
    proc = holdout_subprocess(
        "review", "serve", "run", "--host", "0.0.0.0", "--port", port, cwd=project.root
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/next")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "WARNING" in err and "plain HTTP" in err and "TLS" in err


# -- behind a real TLS-terminating proxy
# ------------------------------------------------------------------------------

NGINX_CONF = """
daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid; error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off; client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{tls_port} ssl;
    ssl_certificate {dir}/cert.pem; ssl_certificate_key {dir}/key.pem;
    location / {{
      proxy_pass http://127.0.0.1:{app_port}; proxy_set_header Host $host:$server_port;
    }}
  }}
}}
"""


@pytest.fixture
def tls_proxy(reviewed, tmp_path):
    nginx, chromium = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("chromium")
    if not os.path.exists(nginx) or not chromium:
        pytest.skip(
            "needs nginx and chromium (Debian packages nginx-light, chromium; .ci/run installs "
            "them)"
        )
    project, tokens = reviewed
    d = tmp_path / "nginx"
    d.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            d / "key.pem",
            "-out",
            d / "cert.pem",
        ],
        check=True,
        capture_output=True,
    )
    app_port, tls_port = free_port(), free_port()
    (d / "nginx.conf").write_text(NGINX_CONF.format(dir=d, tls_port=tls_port, app_port=app_port))
    public = f"https://127.0.0.1:{tls_port}"
    app = holdout_subprocess(
        "review", "serve", "run", "--port", app_port, "--public-url", public, cwd=project.root
    )
    proxy = subprocess.Popen(
        [nginx, "-p", str(d), "-c", str(d / "nginx.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{app_port}/next")
        for _ in range(100):
            try:
                httpx.get(public + "/next", verify=False)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield project, tokens, public, d
    finally:
        proxy.terminate()
        app.terminate()
        proxy.wait(10)
        app.wait(10)


def test_through_the_tls_proxy_forms_are_accepted_and_the_cookie_is_secure(tls_proxy):
    project, tokens, public, d = tls_proxy
    import ssl

    client = httpx.Client(
        base_url=public,
        verify=ssl.create_default_context(cafile=str(d / "cert.pem")),
        follow_redirects=False,
    )
    assert client.get("/login", params={"token": tokens["bob"]}).status_code == 200
    r = client.post("/login", data={"token": tokens["bob"]}, headers={"Origin": public})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    import re

    where = client.get("/next").headers["location"]
    page = client.get(where)
    csrf = re.search(r"name=csrf value=(\w+)", page.text).group(1)
    saved = client.post(where, data={"quality": "4", "csrf": csrf}, headers={"Origin": public})
    assert saved.status_code == 303  # the origin the browser states is the proxy's https one
    forged = client.post(
        client.get("/next").headers["location"],
        data={"quality": "4", "csrf": csrf},
        headers={"Origin": public.replace("https", "http")},
    )
    assert forged.status_code == 403


def test_a_reviewer_in_chromium_through_the_tls_proxy(tls_proxy, tmp_path):
    project, tokens, public, _ = tls_proxy

    async def drive():
        async with chromium_page(tmp_path, "--ignore-certificate-errors") as page:
            await page.call("Network.enable")
            await page.call("Page.navigate", url=f"{public}/login?token={tokens['carol']}")
            landing = await page.text(href=True)
            assert landing.startswith(public + "/login") and "Sign in" in landing
            await page.key("Enter", "Enter", 13)
            first = await page.text(href=True)
            assert first.startswith(public + "/a/") and "Review question" in first
            cookies = (await page.call("Network.getCookies", urls=[public]))["cookies"]
            await page.key(" ", "Space", 32)
            await page.key("Enter", "Enter", 13)
            second = await page.text(href=True)
            return first.split("\n")[0], second.split("\n")[0], cookies

    first, second, cookies = asyncio.run(drive())
    # saved through the proxy, next item shown
    assert second.startswith(public + "/a/") and second != first
    session = [c for c in cookies if c["name"] == "holdout_review"]
    assert session and session[0]["secure"] and session[0]["httpOnly"]
    with project.db() as db:
        saved = db.execute(
            "SELECT scores FROM assignments WHERE id=?", (first.rsplit("/", 1)[-1],)
        ).fetchone()[0]
    assert json.loads(saved) == {"quality": 1}
