"""Loading whole-document JSON releases with only the fields the job needs.

The VQAv2 annotations (~330 MB, ten answer objects per question) are one JSON
object whose records must be joined with the questions, so they are loaded
whole. json.load's ``object_hook`` shrinks every record the moment it is
parsed, so the full parsed document never exists at once: peak memory is the
file text plus the compact result. Measured on a synthetic file of the real
size (382 MB, 443,757 questions): 2.07 GB -> 0.75 GB peak RSS. Only records
of the expected shape are shrunk; anything else is left as it is for the
callers' checks to report.

Records that can be used one at a time (the Karpathy file's ``images``, the
VQAv2 questions for the decontamination sets) are streamed instead, by the
one streaming reader: ``common.jsonl.iter_json_array(path, bad, member=...)``.
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any, Callable

from common.errors import UserError
from common.jsonl import TOO_DEEP, invalid_utf8_error


def load_json_lean(path: str | Path, hook: Callable[[dict], Any]) -> Any:
    """json.load with an object_hook; a parse error names file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        try:
            return json.load(f, object_hook=hook)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        except UnicodeDecodeError:
            raise invalid_utf8_error(path) from None
        except RecursionError:
            raise UserError(f"{path}: {TOO_DEEP}") from None


def vqa_annotation_hook(keep_answers: bool) -> Callable[[dict], Any]:
    """An answer object becomes its answer string (interned: a few thousand
    distinct strings repeat millions of times); an annotation keeps question_id,
    multiple_choice_answer and, where ``keep_answers``, the answer strings."""
    def hook(d: dict) -> Any:
        if "answer_id" in d or "answer_confidence" in d:
            answer = d.get("answer")
            return sys.intern(answer) if isinstance(answer, str) else d
        if "question_id" in d and ("answers" in d or "multiple_choice_answer" in d):
            out = {"question_id": d["question_id"]}
            mc = d.get("multiple_choice_answer")
            if mc is not None:
                out["multiple_choice_answer"] = sys.intern(mc) if isinstance(mc, str) else mc
            if keep_answers and "answers" in d:
                out["answers"] = d["answers"]
            return out
        return d
    return hook
