"""Requests carrying bytes that are not UTF-8 (in the method, the path, a query parameter's
name or value) still get a complete RFC 9457 problem: detail, instance and errors quote the
request with those bytes replaced, instead of being dropped by the JSON encoder. Found by
tests/fuzz (fuzz_query, fuzz_http); input-only, so SQLite only."""

import json
import socket

from conftest import ALL_PERMS, assert_problem, make_key, make_tenant


def raw(server, data):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        s.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out or len(out.partition(b"\r\n\r\n")[2]) < clen(out):
            part = s.recv(65536)
            if not part:
                break
            out += part
    finally:
        s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def clen(out):
    for line in out.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_query_parameter_name_not_utf8(start_server):
    srv = start_server()
    make_tenant(srv, "acme")
    key = make_key(srv, "acme", ALL_PERMS)
    body = assert_problem(srv.request("GET", "/v1/events?%FF%FEx=1", token=key), 400, "??x")
    assert body["detail"].startswith("??x: "), body
    body = assert_problem(srv.request("GET", "/v1/events?limit=%FF", token=key), 400, "limit")


def test_method_not_utf8(start_server):
    srv = start_server()
    make_tenant(srv, "acme")
    key = make_key(srv, "acme", ALL_PERMS)
    req = (b"\xc7ET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() +
           b"\r\nConnection: close\r\n\r\n")
    status, headers, body = raw(srv, req)
    assert_problem((status, headers, body), 405)
    assert body["detail"].startswith("?ET is not allowed here"), body


def test_path_not_utf8(start_server):
    srv = start_server()
    body = assert_problem(srv.request("GET", "/v1/%FF%FE"), 404)
    assert body["instance"] == "/v1/??", body
