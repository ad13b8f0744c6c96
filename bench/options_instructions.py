"""Instructions per in-process /options, counted by callgrind: the same figure however busy the machine is.

Wall-clock figures on a shared machine swing by ±50 % between runs; an instruction count does
not. Runs N /options (users cycling as portal_bench.py's wrk script does) inside Django's test
client after a warm-up; run it under callgrind twice with different N and take the difference:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/options_instructions.py \\
        --kube-dir DIR --database-url URL --requests 10
    (again with --requests 60; instructions per /options = (total60 - total10) / 50)

Options: --no-reply-cache measures the path of a reply not kept (its cache bounded at 0 bytes).
The database must have been filled by portal_bench.py (without --skip-fill) first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import portal_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kube-dir", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--no-reply-cache", action="store_true")
    args = parser.parse_args()
    portal_bench.django_setup(args)
    from spawning import snapshot

    # Under callgrind a run lasts minutes: the snapshot's age limit would rebuild it mid-run.
    snapshot.MAX_AGE_SECONDS = 1e9
    from django.test import Client

    if args.no_reply_cache:
        from spawning import selectors

        selectors._REPLIES.max_bytes = 0
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"token {portal_bench.TOKEN}")
    # Every user of the run seen once: the snapshot built, templates compiled, the connection open,
    # and what is kept per offered item or per reply filled, as after the first seconds of a wrk run.
    for index in range(190):
        client.post("/options", portal_bench.options_body(index), content_type="application/json")
    for index in range(args.requests):
        response = client.post("/options", portal_bench.options_body(index % 190), content_type="application/json")
        assert response.status_code == 200, response.content[:300]


if __name__ == "__main__":
    main()
