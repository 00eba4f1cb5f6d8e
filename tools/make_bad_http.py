#!/usr/bin/env python3
"""Writes the hostile HTTP requests of the bad-input corpus: Tests/Fixtures/bad/http/*.http (issue 12).

Each file is one raw request as a client would send it to `edge-mrcnn serve`, named for what is
wrong with it. Every one must be answered with an error status (4xx/5xx) or a closed connection,
never a crash, and the server must still answer a valid request afterwards (ServeTests). The files
also seed the libFuzzer harnesses fuzz/harness/http.swift and multipart.swift.

Standard library only; deterministic (running it twice gives the same bytes):
  python3 tools/make_bad_http.py
"""
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "bad", "http")
B = "b0undary"
CT = "Content-Type: multipart/form-data; boundary=%s\r\n" % B
# A JPEG header that ends before any scan: the decoder must refuse it.
JPEG_START = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb004300") + bytes(range(64))


def form(fields, boundary=B, close=True):
    out = b""
    for name, filename, data in fields:
        out += b"--" + boundary.encode() + b"\r\n"
        if filename is None:
            out += b'Content-Disposition: form-data; name="%s"\r\n\r\n' % name.encode()
        else:
            out += b'Content-Disposition: form-data; name="%s"; filename="%s"\r\n' % (name.encode(), filename.encode())
            out += b"Content-Type: application/octet-stream\r\n\r\n"
        out += data + b"\r\n"
    if close:
        out += b"--" + boundary.encode() + b"--\r\n"
    return out


def post(body, path="/v1/vision/detection", headers=None, length=None):
    h = "POST %s HTTP/1.1\r\nHost: 127.0.0.1:5000\r\nUser-Agent: python-requests/2.31.0\r\n" % path
    h += CT if headers is None else headers
    if length is not False:
        h += "Content-Length: %s\r\n" % (len(body) if length is None else length)
    return h.encode() + b"\r\n" + body


GOOD_FIELDS = [("api_key", None, b""), ("min_confidence", None, b"0.4"), ("image", "image", JPEG_START)]
GOOD = form(GOOD_FIELDS)

CASES = {
    # Content-Length and transfer codings
    "no-content-length": post(GOOD, length=False),
    "content-length-lies-bigger": post(GOOD, length=len(GOOD) + 5000),
    "content-length-lies-smaller": post(GOOD, length=len(GOOD) // 2),
    "content-length-negative": post(GOOD, length="-1"),
    "content-length-hex": post(GOOD, length="0x40"),
    "content-length-plus": post(GOOD, length="+%d" % len(GOOD)),
    "content-length-overflow": post(GOOD, length="99999999999999999999999"),
    "content-length-conflict": post(GOOD, headers=CT + "Content-Length: 3\r\n"),
    "content-length-huge": post(GOOD, length=999999999),
    "chunked": post(b"10\r\n0123456789abcdef\r\n0\r\n\r\n", headers=CT + "Transfer-Encoding: chunked\r\n", length=False),
    "chunked-and-content-length": post(b"0\r\n\r\n", headers=CT + "Transfer-Encoding: chunked\r\n"),
    "transfer-encoding-gzip": post(GOOD, headers=CT + "Transfer-Encoding: gzip\r\n", length=False),
    "transfer-encoding-http10": b"POST /v1/vision/detection HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # multipart bodies
    "boundary-never-ends": post(form(GOOD_FIELDS, close=False)),
    "boundary-never-starts": post(b"just some bytes, no delimiter at all\r\n"),
    "boundary-missing": post(GOOD, headers="Content-Type: multipart/form-data\r\n"),
    "boundary-too-long": post(form(GOOD_FIELDS, boundary="x" * 80), headers="Content-Type: multipart/form-data; boundary=%s\r\n" % ("x" * 80)),
    "boundary-control-char": post(GOOD, headers="Content-Type: multipart/form-data; boundary=b\x01\r\n"),
    "multipart-no-content-disposition": post(b"--" + B.encode() + b"\r\nContent-Type: image/jpeg\r\n\r\nxx\r\n--" + B.encode() + b"--\r\n"),
    "multipart-no-field-name": post(b"--" + B.encode() + b"\r\nContent-Disposition: form-data\r\n\r\nxx\r\n--" + B.encode() + b"--\r\n"),
    "multipart-part-headers-never-end": post(b"--" + B.encode() + b"\r\nContent-Disposition: form-data; name=\"image\"\r\n" + b"X: y\r\n" * 50),
    "multipart-part-header-too-long": post(b"--" + B.encode() + b"\r\nX: " + b"y" * 9000 + b"\r\n\r\nxx\r\n--" + B.encode() + b"--\r\n"),
    "multipart-too-many-parts": post(form([("f%d" % i, None, b"v") for i in range(40)] + [("image", "i", JPEG_START)])),
    "multipart-garbage-after-boundary": post(b"--" + B.encode() + b"XYZ\r\n" + GOOD),
    "multipart-wrong-media-type": post(b"image=abc", headers="Content-Type: application/x-www-form-urlencoded\r\n"),
    "multipart-no-content-type": post(GOOD, headers=""),
    # form fields
    "image-field-missing": post(form([("api_key", None, b""), ("picture", "p.jpg", JPEG_START)])),
    "image-empty": post(form([("image", "image", b"")])),
    "image-not-jpeg-png": post(form([("image", "image.png", b"\x89PNG\r\n\x1a\n" + bytes(40))])),
    "image-not-jpeg-text": post(form([("image", "image", b"hello, I am not a picture")])),
    "image-truncated-jpeg": post(form([("image", "image", JPEG_START)])),
    "image-jpeg-huge-dimensions": post(form([("image", "image", bytes.fromhex("ffd8ffc0001108ffffffff03012200021101031101ffd9"))])),
    "min-confidence-nan": post(form([("min_confidence", None, b"nan"), ("image", "i", JPEG_START)])),
    "min-confidence-out-of-range": post(form([("min_confidence", None, b"7"), ("image", "i", JPEG_START)])),
    "min-confidence-text": post(form([("min_confidence", None, b"high"), ("image", "i", JPEG_START)])),
    # request line and headers
    "bare-lf-line-endings": post(GOOD).replace(b"\r\n", b"\n"),
    "obs-fold-header": b"GET /v1/status HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n",
    "space-before-colon": b"GET /v1/status HTTP/1.1\r\nHost : a\r\n\r\n",
    "header-without-colon": b"GET /v1/status HTTP/1.1\r\nHost: a\r\nJust a line\r\n\r\n",
    "control-char-in-header": b"GET /v1/status HTTP/1.1\r\nHost: a\r\nX: a\x07b\r\n\r\n",
    "nul-in-target": b"GET /v1/sta\x00tus HTTP/1.1\r\nHost: a\r\n\r\n",
    "no-host": b"GET /v1/status HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET /v1/status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "absolute-form-target": b"GET http://127.0.0.1:5000/v1/status HTTP/1.1\r\nHost: a\r\n\r\n",
    "asterisk-target": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "http-0.9": b"GET /v1/status\r\n\r\n",
    "http-2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "http-version-3": b"GET /v1/status HTTP/3.0\r\nHost: a\r\n\r\n",
    "tls-client-hello": bytes.fromhex("160301020001000200fc03") + bytes(range(32)) + bytes(200),
    "lowercase-version": b"GET /v1/status http/1.1\r\nHost: a\r\n\r\n",
    "double-space-request-line": b"GET  /v1/status HTTP/1.1\r\nHost: a\r\n\r\n",
    "header-too-large": b"GET /v1/status HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    "too-many-headers": b"GET /v1/status HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(100)) + b"\r\n",
    "endless-empty-lines": b"\r\n" * 12000,
    "expect-unknown": post(GOOD, headers=CT + "Expect: 200-ok\r\n"),
    "head-never-ends": b"GET /v1/status HTTP/1.1\r\nHost: a\r\nX-Slow: still typing",
    "request-line-never-ends": b"GET /v1/status/" + b"a" * 300,
    # routes and methods
    "unknown-route": b"GET /admin/../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
    "unknown-model": post(GOOD, path="/v1/vision/custom/no-such-model"),
    "method-not-allowed": b"PUT /v1/vision/detection HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "get-detection": b"GET /v1/vision/detection HTTP/1.1\r\nHost: a\r\n\r\n",
    "method-too-long": b"A" * 100 + b" / HTTP/1.1\r\nHost: a\r\n\r\n",
}


def main():
    os.makedirs(ROOT, exist_ok=True)
    for name in os.listdir(ROOT):
        if name.endswith(".http"):
            os.remove(os.path.join(ROOT, name))
    for name, data in sorted(CASES.items()):
        assert len(data) < 65536, name
        with open(os.path.join(ROOT, name + ".http"), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(CASES), os.path.normpath(ROOT)))


if __name__ == "__main__":
    main()
