#!/usr/bin/env python3
"""Checks `edge-mrcnn serve` with the clients DeepStack users have (issue 12); not a CI step.

  python3 tools/deepstack_client_check.py --binary .build/release/edge-mrcnn --model M IMAGE...
      starts `serve --port 0` on 127.0.0.1, then for each image posts it the way DeepStack's Python
      client does (requests.post(url, files={"image": bytes}, data={"api_key": ..., "min_confidence": ...}))
      and with `curl -F image=@IMAGE`, and compares the predictions with `detect --json
      --score-thresh <min_confidence>` on the same file: same labels and scores, integer boxes,
      masks, sorted by confidence. Ends the server with SIGTERM (exit status 0 expected).
  --load N --clients C
      then C client threads post the images N times each (a bounded loop) and the script reports
      the answers, the latency and the server's peak RSS (VmHWM) against `detect` on one image
      (/usr/bin/time's maximum resident set size).
  --hostile DIR --rounds K
      first sends every raw request file of DIR (Tests/Fixtures/bad/http) K times, each on a new
      connection, and counts the answers (every one must be an error status or a closed
      connection); the checks above then show that the server still answers correctly.
  --url URL  talk to a server already running instead of starting one (no RSS figures then).

Needs python3-requests (and curl for the curl check).
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests


def detect_json(binary, model, image, thresh):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        subprocess.run([binary, "detect", "--model", model, "--json", out, "--score-thresh", str(thresh), image],
                       check=True, stderr=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)


def peak_rss_of_detect(binary, model, image):
    """Maximum resident set size (KiB) of one `detect` run, from GNU time if present, else wait4."""
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.Popen([binary, "detect", "--model", model, "--json", os.path.join(d, "r.json"), image],
                             stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        return ru.ru_maxrss


def compare(preds, expected):
    """Returns a list of differences (empty: same predictions)."""
    diffs = []
    scores = [p["confidence"] for p in preds]
    if scores != sorted(scores, reverse=True):
        diffs.append("not sorted by confidence")
    exp = sorted(expected, key=lambda e: -e["score"])
    if len(preds) != len(exp):
        return diffs + ["%d predictions, detect has %d" % (len(preds), len(exp))]
    for i, (p, e) in enumerate(zip(preds, exp)):
        x, y, w, h = e["bbox"]
        if p["label"] != e["category_name"]:
            diffs.append("%d: label %s vs %s" % (i, p["label"], e["category_name"]))
        if p["confidence"] != e["score"]:
            diffs.append("%d: confidence %r vs %r" % (i, p["confidence"], e["score"]))
        if p["x_min"] != int(x) or p["y_min"] != int(y) or abs(p["x_max"] - int(x + w)) > 1 or abs(p["y_max"] - int(y + h)) > 1:
            diffs.append("%d: box %s vs %s" % (i, [p["x_min"], p["y_min"], p["x_max"], p["y_max"]], e["bbox"]))
        if p.get("mask") != e.get("segmentation"):
            diffs.append("%d: mask differs" % i)
    return diffs


def start_server(binary, model, api_key, read_timeout):
    args = [binary, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0", "--quiet",
            "--read-timeout", str(read_timeout)]
    if api_key:
        args += ["--api-key", api_key]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, "http://127.0.0.1:%s" % m.group(1)
    p.kill()
    sys.exit("the server did not start")


def send_hostile(url, folder, rounds):
    """Sends each file of `folder` raw, `rounds` times; returns the number of wrong answers."""
    host, port = url.split("//")[1].split(":")
    counts, wrong = {}, 0
    files = sorted(os.listdir(folder))
    for _ in range(rounds):
        for name in files:
            data = open(os.path.join(folder, name), "rb").read()
            s = socket.create_connection((host, int(port)), timeout=60)
            try:
                s.sendall(data)
            except OSError:
                pass   # the server may answer and close before reading it all
            reply = b""
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    reply += d
            except OSError:
                pass
            s.close()
            m = re.match(rb"HTTP/1\.1 (\d{3}) ", reply)
            key = int(m.group(1)) if m else "closed"
            counts[key] = counts.get(key, 0) + 1
            if m and int(m.group(1)) < 400:
                print("hostile %s answered %s" % (name, m.group(1)))
                wrong += 1
    print("hostile: %d requests (%d files x %d): %s" % (len(files) * rounds, len(files), rounds,
                                                      dict(sorted(counts.items(), key=str))))
    return wrong


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=".build/release/edge-mrcnn")
    ap.add_argument("--model", required=True)
    ap.add_argument("--url")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--min-confidence", type=float, default=0.4)
    ap.add_argument("--load", type=int, default=0, help="requests per client thread")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--hostile", help="folder of raw hostile requests")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--read-timeout", type=float, default=2, help="--read-timeout of the started server")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()

    server, url = (None, a.url) if a.url else start_server(a.binary, a.model, a.api_key, a.read_timeout)
    failures = 0
    try:
        if a.hostile:
            failures += send_hostile(url, a.hostile, a.rounds)
        detect_url = url + "/v1/vision/detection"
        for image in a.images:
            data = open(image, "rb").read()
            expected = detect_json(a.binary, a.model, image, a.min_confidence)
            # As DeepStack's Python client posts (robmarkcole/deepstack-python, deepstack/core.py).
            r = requests.post(detect_url, files={"image": data},
                              data={"api_key": a.api_key, "min_confidence": a.min_confidence}, timeout=120)
            body = r.json()
            d = compare(body.get("predictions", []), expected) if r.status_code == 200 else ["status %d: %s" % (r.status_code, body)]
            print("requests %s: %d predictions, %s" % (os.path.basename(image), body.get("count", -1), "same as detect" if not d else d))
            failures += bool(d)
            # curl -F image=@FILE (plus the fields) as a user would type it.
            cmd = ["curl", "-s", "-F", "image=@" + image, "-F", "min_confidence=%s" % a.min_confidence]
            if a.api_key:
                cmd += ["-F", "api_key=" + a.api_key]
            out = subprocess.run(cmd + [detect_url], capture_output=True, check=True).stdout
            body = json.loads(out)
            d = compare(body.get("predictions", []), expected)
            print("curl     %s: %d predictions, %s" % (os.path.basename(image), body.get("count", -1), "same as detect" if not d else d))
            failures += bool(d)

        if a.load > 0:
            images = [open(i, "rb").read() for i in a.images]
            statuses = {}
            latencies = []
            lock = threading.Lock()

            def client(k):
                s = requests.Session()
                for n in range(a.load):
                    t0 = time.time()
                    try:
                        r = s.post(detect_url, files={"image": images[(k + n) % len(images)]},
                                   data={"api_key": a.api_key}, timeout=300)
                        code = r.status_code
                    except requests.RequestException as e:
                        code = type(e).__name__
                    with lock:
                        statuses[code] = statuses.get(code, 0) + 1
                        latencies.append(time.time() - t0)

            t0 = time.time()
            threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.time() - t0
            latencies.sort()
            print("load: %d clients x %d requests in %.1f s: %s; latency median %.2f s, max %.2f s"
                  % (a.clients, a.load, wall, statuses, latencies[len(latencies) // 2], latencies[-1]))
            if server:
                hwm = vm_hwm_kib(server.pid)
                one = peak_rss_of_detect(a.binary, a.model, a.images[0])
                print("peak RSS: serve under load %.1f MiB, one detect %.1f MiB: ratio %.2f"
                      % (hwm / 1024, one / 1024, hwm / one))
            os.system("uptime")
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            rc = server.wait(timeout=120)
            print("server stopped with exit status %d" % rc)
            failures += rc != 0
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
