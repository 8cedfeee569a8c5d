"""A loopback OpenAI-compatible chat server that translates a small parallel
corpus and injects faults, for tests and the benchmark of the openai backend.

It answers ``POST /v1/chat/completions`` for texts made from ``CORPUS``
(English sentences with a number in them, written here with German, French and
Spanish translations): the target language is read from the system prompt
("... into German."), the sentence from the user message. On the first try of
a share ``fault_rate`` of the texts (chosen by a hash of the text, so a rerun
meets the same ones) it answers with one of ``FAULTS`` instead:

    429       HTTP 429 with a Retry-After header (``retry_after`` seconds)
    500       HTTP 500
    slow      the right reply after ``slow_s`` seconds (beyond a short client timeout)
    cut       a 200 whose body stops half way (Content-Length says more), then the connection closes
    wrong     a clean reply in another language (French, or German for a French target)
    preamble  "Here is the translation:" and quotes around the right reply

Texts with ``ALWAYS500`` fail on every try; ``NOPLACE`` comes back without its
``{}`` placeholders; ``LONGCUT`` comes back with ``finish_reason: length``.
Every request is logged (``requests``: tries per text, ``log``: (time, text, fault)).

    python tests/tools/fake_openai.py [--fault-rate 0.1] [--delay 0.02]   # prints the URL
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (English, German, French, Spanish); %d is a number that makes each text unique.
CORPUS = [
    ("In picture %d a dog runs on the green grass near a lake.",
     "Auf Bild %d läuft ein Hund auf dem grünen Gras in der Nähe eines Sees.",
     "Sur l'image %d, un chien court sur l'herbe verte près d'un lac.",
     "En la imagen %d un perro corre sobre la hierba verde cerca de un lago."),
    ("Two children are playing with a red ball in park number %d.",
     "Zwei Kinder spielen im Park Nummer %d mit einem roten Ball.",
     "Deux enfants jouent avec un ballon rouge dans le parc numéro %d.",
     "Dos niños juegan con una pelota roja en el parque número %d."),
    ("Question %d: what colour is the car parked next to the building?",
     "Frage %d: Welche Farbe hat das Auto, das neben dem Gebäude geparkt ist?",
     "Question %d : de quelle couleur est la voiture garée à côté du bâtiment ?",
     "Pregunta %d: ¿de qué color es el coche aparcado junto al edificio?"),
    ("A woman holds an umbrella while she walks through the rain on street %d.",
     "Eine Frau hält einen Regenschirm, während sie auf der Straße %d durch den Regen geht.",
     "Une femme tient un parapluie pendant qu'elle marche sous la pluie dans la rue %d.",
     "Una mujer sostiene un paraguas mientras camina bajo la lluvia por la calle %d."),
    ("Describe image %d in detail and answer with {} words.",
     "Beschreibe Bild %d ausführlich und antworte mit {} Wörtern.",
     "Décris l'image %d en détail et réponds en {} mots.",
     "Describe la imagen %d con detalle y responde con {} palabras."),
    ("The kitchen in house %d has white cabinets and a wooden floor.",
     "Die Küche in Haus %d hat weiße Schränke und einen Holzboden.",
     "La cuisine de la maison numéro %d possède des placards blancs et un plancher en bois.",
     "La cocina de la casa %d tiene armarios blancos y un suelo de madera."),
]
LANGS = {"German": 1, "French": 2, "Spanish": 3}
FAULTS = ("429", "500", "slow", "cut", "wrong", "preamble")
_PATTERNS = [re.compile(re.escape(row[0]).replace("%d", r"(\d+)") + "$") for row in CORPUS]


def corpus_text(i: int) -> tuple[str, int]:
    """The i-th distinct English text (and its corpus row)."""
    row = i % len(CORPUS)
    return CORPUS[row][0] % i, row


def reference(text: str, lang: str) -> str | None:
    """The corpus translation of text into lang (a language name), or None."""
    for row, pat in zip(CORPUS, _PATTERNS):
        m = pat.search(text)
        if m and lang in LANGS:
            return row[LANGS[lang]] % int(m.group(1))
    return None


class _Server(ThreadingHTTPServer):
    request_queue_size = 256   # many clients connecting at once (the default 5 drops SYNs: 1 s stalls)


class FakeOpenAI:
    def __init__(self, fault_rate: float = 0.1, seed: int = 0, retry_after: str = "1", slow_s: float = 1.5,
                 delay: float = 0.0):
        self.fault_rate, self.seed, self.retry_after = fault_rate, seed, retry_after
        self.slow_s, self.delay = slow_s, delay
        self.requests: collections.Counter = collections.Counter()
        self.log: list[tuple[float, str, str | None]] = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def fault(self, text: str, attempt: int) -> str | None:
        if "ALWAYS500" in text:
            return "500"
        h = int(hashlib.sha256(f"{self.seed}|{text}".encode()).hexdigest(), 16)
        if attempt == 0 and h % 10_000 < self.fault_rate * 10_000:
            return FAULTS[(h // 10_000) % len(FAULTS)]
        return None

    def answer(self, text: str, lang: str, fault: str | None) -> tuple[str, str]:
        """(reply content, finish_reason) of a request that gets a 200."""
        if fault == "wrong":
            lang = "German" if lang == "French" else "French"
        out = reference(text, lang)
        out = text if out is None else out
        if "NOPLACE" in text:
            out = out.replace("{}", "").replace("  ", " ")
        if fault == "preamble":
            out = f'Here is the translation:\n\n"{out}"'
        return out, "length" if "LONGCUT" in text else "stop"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True   # headers and body go out at once (no 40 ms delayed-ACK stall)

    def log_message(self, *args):
        pass

    def _send(self, status: int, payload: dict, headers: dict | None = None, cut: bool = False) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if cut else body)
        if cut:
            self.wfile.flush()
            self.close_connection = True

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def do_POST(self):
        fake: FakeOpenAI = self.server.fake
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        system, text = req["messages"][0]["content"], req["messages"][-1]["content"]
        m = re.search(r" into ([^.]+?)(?: \(|\.)", system)
        with fake.lock:
            attempt = fake.requests[text]
            fake.requests[text] += 1
            kind = fake.fault(text, attempt)
            fake.log.append((time.monotonic(), text, kind))
        if fake.delay:
            time.sleep(fake.delay)
        try:
            if kind == "429":
                return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": fake.retry_after})
            if kind == "500":
                return self._send(500, {"error": {"message": "internal error"}})
            if kind == "slow":
                time.sleep(fake.slow_s)
            content, finish = fake.answer(text, m.group(1) if m else "", kind)
            self._send(200, {"object": "chat.completion", "model": req.get("model"),
                             "choices": [{"index": 0, "finish_reason": finish,
                                          "message": {"role": "assistant", "content": content}}]},
                       cut=kind == "cut")
        except (BrokenPipeError, ConnectionResetError):   # the client gave up (timeout)
            self.close_connection = True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds each request takes (a model's latency)")
    ap.add_argument("--seconds", type=float, default=600, help="stop after this long")
    args = ap.parse_args(argv)
    with FakeOpenAI(args.fault_rate, delay=args.delay) as fake:
        print(fake.base_url, flush=True)
        time.sleep(args.seconds)


if __name__ == "__main__":
    main()
