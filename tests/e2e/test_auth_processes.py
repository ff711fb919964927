"""Admin authentication with real processes: login throttling shared by two ``herald serve``
processes through Postgres, the ``herald users`` / ``herald apikeys`` commands against a
running server, and no password in any log line."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import httpx

from tests.e2e.test_newcomer import wait_ready
from tests.support.auth import Completed, bearer, csrf_token, login, request_token, run_herald
from tests.support.database import free_port
from tests.support.processes import herald_env, herald_process, wait_exit

SECRET_KEY = "e2e-secret-key-" + "k" * 40
OLD_PASSWORD = "E2e-Old-Pa55word-71c3"
NEW_PASSWORD = "E2e-New-Pa55word-a04d"
WRONG_PASSWORD = "E2e-Wrong-Pa55word-{}"
SHORT_PASSWORD = "Sh0rt-9f2e"  # 10 characters: under the policy's 12
SECRETS = (OLD_PASSWORD, NEW_PASSWORD, WRONG_PASSWORD.format(""), SHORT_PASSWORD)
KEY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def auth_env(database_url: str, tmp_path: Path, port: int | None = None) -> dict[str, str]:
    overrides = {
        "HERALD_DATABASE_URL": database_url,
        "HERALD_SECRET_KEY": SECRET_KEY,
        "HERALD_DATA_DIR": str(tmp_path / "data"),
        "HERALD_LOG_LEVEL": "debug",
        "HERALD_LOG_FORMAT": "json",
    }
    if port is not None:
        overrides["HERALD_PORT"] = str(port)
    return herald_env(**overrides)


def json_log_events(text: str) -> list[str]:
    """The ``event`` of every JSON log line (asserting the lines are JSON)."""
    return [json.loads(line)["event"] for line in text.splitlines() if line.startswith("{")]


def assert_no_secret(text: str, where: str, *secrets: str) -> None:
    for secret in (*SECRETS, *secrets):
        assert secret not in text, f"{secret!r} appears in {where}"


async def stop(process: asyncio.subprocess.Process, log_path: Path) -> None:
    process.send_signal(signal.SIGTERM)
    code = await wait_exit(process, 30)
    if code != 0:
        raise AssertionError(f"exit code {code}:\n{await asyncio.to_thread(log_path.read_text)}")


async def test_failed_logins_are_counted_across_two_web_processes(
    database_url: str, tmp_path: Path
) -> None:
    ports = (free_port(), free_port())
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    envs = [auth_env(database_url, tmp_path, port) for port in ports]
    logs = [tmp_path / "serve-a.log", tmp_path / "serve-b.log"]
    async with (
        herald_process("serve", env=envs[0], log_path=logs[0]) as serve_a,
        herald_process("serve", env=envs[1], log_path=logs[1]) as serve_b,
    ):
        created, *_ = await asyncio.gather(
            run_herald(
                "users", "create", "admin", "--password-stdin", env=envs[0], stdin=OLD_PASSWORD
            ),
            wait_ready(urls[0]),
            wait_ready(urls[1]),
        )
        assert created.returncode == 0, created.stderr
        async with (
            httpx.AsyncClient(base_url=urls[0]) as on_a,
            httpx.AsyncClient(base_url=urls[1]) as on_b,
            httpx.AsyncClient(base_url=urls[1]) as control,
        ):
            token_a = await csrf_token(on_a, "/login")
            token_b = await csrf_token(on_b, "/login")
            for i in range(5):
                failed = await login(on_a, "admin", WRONG_PASSWORD.format(i), token=token_a)
                assert failed.status_code == 303, failed.text
                assert failed.headers["location"] == "/login"
            for i in range(5, 9):
                failed = await login(on_b, "admin", WRONG_PASSWORD.format(i), token=token_b)
                assert failed.status_code == 303, failed.text
                assert failed.headers["location"] == "/login"

            # Nine failures: not locked yet (and the password is the right one).
            allowed = await login(control, "admin", OLD_PASSWORD)
            assert allowed.status_code == 303, allowed.text
            assert allowed.headers["location"] == "/admin/dashboard"

            tenth = await login(on_b, "admin", WRONG_PASSWORD.format(9), token=token_b)
            assert tenth.headers["location"] == "/login"

            # Process A saw only five failures itself; the lock comes from the database.
            locked = await login(on_a, "admin", OLD_PASSWORD, token=token_a)
            assert locked.status_code == 429, locked.text
            assert 0 < int(locked.headers["retry-after"]) <= 900
            assert "herald_session" not in locked.headers.get("set-cookie", "")
            api_locked = await request_token(on_b, "admin", OLD_PASSWORD)
            assert api_locked.status_code == 429, api_locked.text
            assert "access_token" not in api_locked.text
        await stop(serve_a, logs[0])
        await stop(serve_b, logs[1])

    for log_path in logs:
        text = log_path.read_text()
        events = json_log_events(text)
        assert events.count("login failed") >= 4, events  # each process handled its share
        assert_no_secret(text, log_path.name)
    assert "login throttled" in json_log_events(logs[0].read_text())
    assert_no_secret(created.stdout + created.stderr, "herald users create")


async def test_users_and_apikeys_commands_against_a_running_server(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = auth_env(database_url, tmp_path, port)
    log_path = tmp_path / "serve.log"
    cli: list[Completed] = []

    async def herald(*args: str, stdin: str | None = None) -> Completed:
        result = await run_herald(*args, env=env, stdin=stdin)
        cli.append(result)
        return result

    async def create_users() -> tuple[Completed, Completed]:
        short = await herald("users", "create", "admin", "--password-stdin", stdin=SHORT_PASSWORD)
        good = await herald(
            "users", "create", "admin", "--password-stdin", stdin=OLD_PASSWORD + "\n"
        )
        return short, good

    async with herald_process("serve", env=env, log_path=log_path) as serve:
        (short, created), _ = await asyncio.gather(create_users(), wait_ready(url))
        assert short.returncode != 0
        assert "too short" in short.stderr
        assert "12" in short.stderr
        assert "Traceback" not in short.stderr
        # Only then does the real user exist: the failed command created nothing.
        assert created.returncode == 0, created.stderr

        async with (
            httpx.AsyncClient(base_url=url) as browser,
            httpx.AsyncClient(base_url=url) as api,
        ):
            # A session, a failed form login, a failed and a good token request.
            logged_in = await login(browser, "admin", OLD_PASSWORD)
            assert logged_in.headers["location"] == "/admin/dashboard"
            assert (await browser.get("/admin/dashboard")).status_code == 200
            failed = await login(api, "admin", WRONG_PASSWORD.format("form"))
            assert failed.headers["location"] == "/login"
            wrong = await request_token(api, "admin", WRONG_PASSWORD.format("api"))
            assert wrong.status_code == 401
            old_token_response = await request_token(api, "admin", OLD_PASSWORD)
            assert old_token_response.status_code == 200, old_token_response.text
            old_token = old_token_response.json()["access_token"]
            assert (await api.get("/api/v1/me", headers=bearer(old_token))).status_code == 200

            reset = await herald(
                "users", "set-password", "admin", "--password-stdin", stdin=NEW_PASSWORD
            )
            assert reset.returncode == 0, reset.stderr

            # Every session and every earlier token of the user has ended.
            dashboard = await browser.get("/admin/dashboard")
            assert dashboard.status_code == 303
            assert dashboard.headers["location"] == "/login"
            assert (await api.get("/api/v1/me", headers=bearer(old_token))).status_code == 401
            assert (await request_token(api, "admin", OLD_PASSWORD)).status_code == 401
            new_token = await request_token(api, "admin", NEW_PASSWORD)
            assert new_token.status_code == 200, new_token.text

            made = await herald("apikeys", "create", "ci", "--scope", "write", "--user", "admin")
            assert made.returncode == 0, made.stderr
            key = made.stdout.strip()
            assert key.startswith("hrld_"), made.stdout
            assert "\n" not in key
            who = await api.get("/api/v1/me", headers=bearer(key))
            assert who.status_code == 200, who.text
            assert who.json()["username"] == "admin"
            assert who.json()["scope"] == "write"
            assert who.json()["via"] == "api_key"

            listed = await herald("apikeys", "list")
            assert listed.returncode == 0, listed.stderr
            [line] = [line for line in listed.stdout.splitlines() if line.rstrip().endswith("ci")]
            assert key[: len("hrld_") + 6] in line
            assert key not in listed.stdout
            assert key[len("hrld_") + 6 :] not in listed.stdout
            id_match = KEY_ID.search(line)
            assert id_match, line

            revoked = await herald("apikeys", "revoke", id_match.group(0))
            assert revoked.returncode == 0, revoked.stderr
            gone = await api.get("/api/v1/me", headers=bearer(key))
            assert gone.status_code == 401
            assert gone.headers["www-authenticate"].startswith("Bearer")
        await stop(serve, log_path)

    server_log = log_path.read_text()
    events = json_log_events(server_log)
    for expected in ("login failed", "session started", "request"):
        assert expected in events, f"no {expected!r} line: the log check would prove nothing"
    assert_no_secret(server_log, "the server log", key)
    for result in cli:
        assert_no_secret(result.stdout + result.stderr, "herald CLI output")
    assert "password reset" in json_log_events(reset.stderr)
