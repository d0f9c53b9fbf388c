"""The command line: help, version, bad flags, env vars, startup banner, generated secrets."""

import os
import re
import stat
import subprocess

import pytest

from conftest import SLOW, clean_env, free_port, make_tenant, sluice_bin, wait_for


def run(*args, env=None, timeout=20):
    return subprocess.run([sluice_bin(), *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout * SLOW, env=clean_env(env))


def test_help_prints_usage_and_exits_zero():
    r = run("--help")
    assert r.returncode == 0, r.stderr
    assert "serve" in r.stdout
    assert "usage" in r.stdout.lower()


def test_serve_help_lists_flags():
    r = run("serve", "--help")
    assert r.returncode == 0, r.stderr
    for flag in ("--listen", "--data-dir", "--db", "--admin-token", "--log-format",
                 "--log-level", "--time-scale", "--allow-private-targets"):
        assert flag in r.stdout, flag
    # Each flag has an environment variable.
    assert "SLUICE_LISTEN" in r.stdout


def test_version():
    r = run("version")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"sluice \S+\n?", r.stdout), r.stdout


@pytest.mark.parametrize("args", [
    ["serve", "--data-dir", "{d}", "--no-such-flag"],
    ["serve", "--data-dir", "{d}", "--log-format", "xml"],
    ["serve", "--data-dir", "{d}", "--time-scale", "fast"],
    ["serve", "--data-dir", "{d}", "--listen"],
    ["no-such-command"],
], ids=["unknown-flag", "bad-log-format", "bad-time-scale", "missing-value", "unknown-command"])
def test_bad_command_line_fails_with_one_line(args, tmp_path):
    d = str(tmp_path / "d")
    r = run(*[a.replace("{d}", d) for a in args])
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("sluice:"), r.stderr
    assert not os.path.exists(os.path.join(d, "sluice.db")), "bad flags must not start anything"


def test_bad_env_value_fails(tmp_path):
    r = run("serve", "--data-dir", str(tmp_path / "d"), env={"SLUICE_LOG_FORMAT": "xml"})
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sluice:"), r.stderr


def test_env_var_sets_listen_address(start_server):
    port = free_port()
    srv = start_server(listen=False, port=port, env={"SLUICE_LISTEN": f"127.0.0.1:{port}"})
    status, _, body = srv.request("GET", "/healthz")
    assert status == 200 and body == {"status": "ok"}


def test_startup_banner(start_server, db):
    srv = start_server(db=db)
    version = run("version").stdout.split()[1]
    out = wait_for(lambda: (lambda o: o if "Console:" in o else None)(srv.output()), 5,
                   what="startup banner")
    assert f"Sluice {version} listening on http://127.0.0.1:{srv.port}" in out, out
    assert f"Console: http://127.0.0.1:{srv.port}/" in out, out
    assert "Admin token:" in out, out


def test_generated_admin_token_and_master_key(start_server, db):
    srv = start_server(db=db, admin_token=False)
    token_file = os.path.join(srv.data_dir, "admin-token")
    token = srv.admin_token  # read from the file once ready
    assert token.startswith("adm_"), token
    assert len(token) >= 20
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    key_file = os.path.join(srv.data_dir, "master-key")
    assert os.path.exists(key_file)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    master = open(key_file).read()

    out = wait_for(lambda: (lambda o: o if "Console:" in o else None)(srv.output()), 5,
                   what="startup banner")
    assert re.search(r"Admin token:\s*" + re.escape(token), out), out

    # The generated token works on the admin API.
    make_tenant(srv, "acme")
    status, _, _ = srv.request("GET", "/v1/admin/tenants", token="adm_wrong")
    assert status == 401

    assert srv.stop() == 0
    srv.restart()
    out = wait_for(lambda: (lambda o: o if "Console:" in o else None)(srv.output()), 5,
                   what="startup banner after restart")
    assert token not in out, "the admin token must be printed only once"
    assert "Admin token:" in out and token_file in out, out
    # Same token and master key after the restart; data still there.
    assert srv.read_token_file() == token
    assert open(key_file).read() == master
    status, _, body = srv.admin("GET", "/v1/admin/tenants")
    assert status == 200 and [t["id"] for t in body["data"]] == ["acme"], body


def test_given_admin_token_is_not_written(start_server):
    srv = start_server(admin_token="given-token-123456")
    assert not os.path.exists(os.path.join(srv.data_dir, "admin-token"))
    status, _, body = srv.admin("GET", "/v1/admin/tenants")
    assert status == 200, body


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_taken_listen_address_is_named_and_nothing_is_created(tmp_path, request, db):
    """A taken --listen address fails start-up with the address asked for (it once said
    "port 0"), before anything is written: no data dir, admin token, key or database."""
    import socket
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    d = tmp_path / "d"
    args = ["serve", "--data-dir", str(d), "--listen", f"127.0.0.1:{port}"]
    if db == "postgres":
        pg = request.getfixturevalue("pg")
        pg.psql("CREATE DATABASE taken")
        args += ["--db", pg.url("taken")]
    try:
        r = run(*args)
    finally:
        holder.close()
    assert r.returncode != 0
    assert r.stderr.strip() == f"sluice: cannot listen on 127.0.0.1:{port}: Address already in use", \
        r.stderr
    assert "port 0" not in r.stdout + r.stderr
    assert not d.exists(), sorted(os.listdir(d))
    if db == "postgres":  # no migration ran either
        assert pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                       db="taken").strip() == "0"
