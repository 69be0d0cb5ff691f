"""The server image's health check: GET /health of the server in this container (no curl in
the image). Exit 0 on 200; anything else (503 when the Docker engine cannot be reached, no
answer, a timeout) exits 1, and Docker marks the container unhealthy after a few in a row."""

import os
import sys
import urllib.request

host = os.environ.get("CODEBEAKER_HOST", "127.0.0.1")
if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard bind answers on loopback too
    host = "127.0.0.1"
elif ":" in host:
    host = f"[{host}]"
url = f"http://{host}:{os.environ.get('CODEBEAKER_PORT', '5000')}/health"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
try:
    with opener.open(url, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:  # HTTPError (503) and URLError are OSErrors
    print(f"{url}: {exc}", file=sys.stderr)
    sys.exit(1)
