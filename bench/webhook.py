"""Webhook delivery benchmark: Sluice delivering to a local nginx, next to wrk's raw POST
rate of the same bodies to the same nginx, in the same run; then publish-to-receipt latency
at a steady 1,000 events/s to a recording receiver. Prints one JSON object.

Usage: python3 bench/webhook.py SLUICE_BIN [events]
"""
import http.client
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
MAX_IN_FLIGHT = int(os.environ.get("MAX_IN_FLIGHT", "256"))
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(port, path="/", deadline=20):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not answer")


class Api:
    def __init__(self, port, token):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token = token

    def call(self, method, path, body=None, token=None):
        h = {"Authorization": "Bearer " + (token or self.token)}
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        self.c.request(method, path, body=data, headers=h)
        r = self.c.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None


def start_nginx(tmp):
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 4096; }}
http {{
  access_log off; client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; location / {{ client_body_buffer_size 64k;
    return 200 "ok"; }} }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_http(port)
    return proc, port


def start_sluice(tmp, extra=()):
    port = free_port()
    data = os.path.join(tmp, "sluice-" + str(port))
    log = open(data + ".log", "w")
    proc = subprocess.Popen([BIN, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
                             "--admin-token", "benchtoken", "--allow-private-targets",
                             "--log-level", "warn", *extra], stdout=log, stderr=log)
    wait_http(port, "/healthz")
    api = Api(port, "benchtoken")
    api.call("POST", "/v1/admin/tenants", {"id": "bench", "name": "Bench"})
    _, k = api.call("POST", "/v1/admin/tenants/bench/keys",
                    {"name": "bench", "permissions": ["events:publish", "tools:manage"]})
    api.token = k["key"]
    return proc, port, api


def stop(proc):
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sample_body():
    return json.dumps({"id": "evt_01M8442BPJ9BQMRF7G0GGNBS81", "type": "order.created",
                       "name": "order.created", "entity": "order", "entity_id": "ORD-123456",
                       "sequence": 1, "occurred_at": "2026-11-23T11:53:39.282Z",
                       "published_at": "2026-11-23T11:53:39.282Z", "tenant": "bench",
                       "integration_id": "i0", "attempt": 1,
                       "payload": {"n": 1, "note": "x" * 420}})


def wrk_raw(port, tmp, secs=8):
    script = os.path.join(tmp, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = [[{sample_body()}]]\n")
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{secs}s", "-s", script,
                          f"http://127.0.0.1:{port}/hook"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(out)


def publish_all(api, n, batch=100):
    ev = {"type": "order.created", "payload": {"note": "x" * 420}}
    for i in range(0, n, batch):
        events = [dict(ev, entity_id=f"ORD-{i + j}") for j in range(min(batch, n - i))]
        st, body = api.call("POST", "/v1/events", {"events": events})
        assert st == 202, (st, body)


def delivered(api, ids):
    total = 0
    for iid in ids:
        _, body = api.call("GET", f"/v1/integrations/{iid}")
        total += body["stats"]["succeeded"]
    return total


def throughput(tmp, nginx_port, integrations):
    """Publishes N events with every role but webhook stopped? No: events are published
    first with --roles api (a backlog), then a node with every role delivers them all; the
    rate is deliveries / time from that node's start to the last success."""
    proc, port, api = start_sluice(tmp, ["--roles", "api"])
    ids = [f"i{k}" for k in range(integrations)]
    for iid in ids:
        st, body = api.call("POST", "/v1/integrations", {
            "id": iid, "events": ["order"], "ordering": "none", "max_in_flight": MAX_IN_FLIGHT,
            "target": {"type": "webhook", "url": f"http://127.0.0.1:{nginx_port}/hook"}})
        assert st == 201, body
    publish_all(api, N)
    data_dir = proc.args[proc.args.index("--data-dir") + 1]
    stop(proc)
    log = open(data_dir + ".run.log", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen([BIN, "serve", "--data-dir", data_dir, "--listen",
                             f"127.0.0.1:{port}", "--admin-token", "benchtoken",
                             "--allow-private-targets", "--log-level", "warn"],
                            stdout=log, stderr=log)
    wait_http(port, "/healthz")
    api = Api(port, api.token)
    want = N * integrations
    while True:
        done = delivered(api, ids)
        if done >= want:
            break
        if time.monotonic() - t0 > 600:
            raise RuntimeError(f"only {done} of {want} delivered")
        time.sleep(0.2)
    secs = time.monotonic() - t0
    stop(proc)
    return want / secs


class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lat = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n)
        now = time.time()
        pub = json.loads(body)["published_at"]
        t = time.mktime(time.strptime(pub[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        t += int(pub[20:23]) / 1000.0
        Recorder.lat.append((now - t) * 1000.0)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def latency(tmp, rate=1000, secs=10):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    proc, port, api = start_sluice(tmp)
    st, body = api.call("POST", "/v1/integrations", {
        "id": "lat", "events": ["order"], "ordering": "none",
        "target": {"type": "webhook", "url": f"http://127.0.0.1:{srv.server_address[1]}/h"}})
    assert st == 201, body
    per_tick, tick = 10, 0.01  # 10 events every 10 ms
    start = time.monotonic()
    sent = 0
    while sent < rate * secs:
        st, _ = api.call("POST", "/v1/events", {"events": [
            {"type": "order.created", "entity_id": f"O-{sent + j}"} for j in range(per_tick)]})
        assert st == 202
        sent += per_tick
        next_at = start + (sent / per_tick) * tick
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    end = time.monotonic() + 30
    while len(Recorder.lat) < sent and time.monotonic() < end:
        time.sleep(0.05)
    stop(proc)
    srv.shutdown()
    lat = sorted(Recorder.lat)
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 1)
    achieved = sent / (time.monotonic() - start)
    return {"p50_ms": q(0.50), "p99_ms": q(0.99), "p999_ms": q(0.999), "received": len(lat),
            "sent": sent, "note": "receipt time minus published_at (ms clock resolution)"}


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    try:
        ngx, nport = start_nginx(tmp)
        try:
            raw = wrk_raw(nport, tmp)
            one = throughput(tmp, nport, 1)
            ten = throughput(tmp, nport, 10)
        finally:
            stop(ngx)
        lat = latency(tmp)
        print(json.dumps({"wrk_raw_req_per_s": round(raw), "events_per_s": round(one),
                          "events_per_s_10_integrations": round(ten),
                          "ratio": round(one / raw, 3),
                          "ratio_10_integrations": round(ten / raw, 3), **lat}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
