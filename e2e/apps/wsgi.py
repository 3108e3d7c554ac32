"""The WSGI app the end-to-end suite runs under gunicorn.

Standard library only, so Debian's gunicorn with /usr/bin/python3 runs it.

    /                   200 "hello from gunicorn"
    /sleep?s=N          sleeps N seconds (float), then 200
    /cookies?kib=N      200 with about N KiB of Set-Cookie header fields
    /method             200 with the request's method: what reached the app
"""

import time
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))

    if path == "/sleep":
        seconds = float(query.get("s", ["1"])[0])
        time.sleep(seconds)
        return _text(start_response, "slept %gs\n" % seconds)

    if path == "/method":
        return _text(start_response, environ.get("REQUEST_METHOD", "") + "\n")

    if path == "/cookies":
        kib = int(query.get("kib", ["40"])[0])
        headers = [("Content-Type", "text/plain")]
        # One cookie per KiB: what a session store or an A/B framework that
        # went wrong sends.
        for i in range(kib):
            headers.append(("Set-Cookie", "c%d=%s; Path=/" % (i, "x" * 1000)))
        body = b"cookies\n"
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    return _text(start_response, "hello from gunicorn\n")


def _text(start_response, text):
    body = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
