"""Serve ``<paths.raw_root>/web`` on http://127.0.0.1:18080/ for the demo.

The fixture URLs point there, so the download step runs against a real HTTP
server without any network. Runs until killed (tests/tools/demo.py does that).
A development tool, not part of the pipeline.

    python tests/tools/serve_web.py --set paths.raw_root=tests/fixtures/raw
"""
from __future__ import annotations

import functools
import http.server
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common.config import parse_args  # noqa: E402
from common.errors import entry_point  # noqa: E402

PORT = 18080   # fixed: the fixture URLs name it


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as real image hosts do

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, {}, None, argv)
    root = cfg.path("paths.raw_root") / "web"
    if not root.is_dir():
        from common.errors import UserError
        raise UserError(f"paths.raw_root: no web/ folder to serve at {root}")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), handler)
    print(f"serving {root} on http://127.0.0.1:{PORT}/", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
