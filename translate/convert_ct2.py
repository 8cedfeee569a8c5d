"""Convert an NLLB or MADLAD-400 checkpoint (hub name or local folder) for the ctranslate2 backend.

    python translate/convert_ct2.py                      # paths.nllb_model -> paths.ct2_model, int8
    python translate/convert_ct2.py --set convert.quantization=float16
    python translate/convert_ct2.py --set convert.model=google/madlad400-3b-mt --set convert.output=DIR

The model family (nllb: M2M100; madlad: T5) is read from the checkpoint's
config.json and the conversion refuses any other architecture; the tokenizer
saved with the converted model tells the backend the family
(translation.model_family: auto, translate/families.py).

int8 weights serve both CPU (int8) and GPU (converted on load to int8_float16
or float16 via translation.dtype). The tokenizer is saved into the output folder.
Needs the fast extra: pip install -e '.[fast]'.
"""
from __future__ import annotations

import sys
from pathlib import Path

from common.config import REPO_ROOT, parse_args
from common.errors import UserError, entry_point

DEFAULTS = {
    "convert": {
        "model": "${paths.nllb_model}",
        "output": "${paths.ct2_model}",
        "quantization": "int8",     # int8 | int8_float16 | float16 | bfloat16 | float32
        "force": False,
    },
}


def model_family_of(model: str | Path) -> str | None:
    """nllb or madlad, from the checkpoint's config.json (None where it cannot be
    read: a hub name not in the local cache; the converter then reads it itself)."""
    from .families import detect_family
    found, why = detect_family({"backend": "hf", "model": str(model)})
    if found == "?":
        raise UserError(f"convert.model {model}: neither NLLB nor MADLAD ({why}); the backends run only these")
    return found


def convert_ct2(model_dir: str | Path, out_dir: str | Path, quantization: str = "int8",
                force: bool = True) -> Path:
    """Convert a transformers NLLB (M2M100) or MADLAD (T5) checkpoint for CTranslate2
    (same as ``ct2-transformers-converter --model DIR --output_dir OUT --quantization Q``)."""
    from ctranslate2.converters import TransformersConverter

    model_family_of(model_dir)   # refuses another architecture before the (long) conversion

    out_dir = Path(out_dir)
    TransformersConverter(str(model_dir)).convert(str(out_dir), quantization=quantization, force=force)
    # The tokenizer travels with the converted model so the backend needs one folder only.
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(out_dir)
    return out_dir


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, str(REPO_ROOT / "configs" / "convert_ct2.yaml"), argv)
    c = cfg["convert"]
    out = cfg.path("convert.output")
    if (out / "model.bin").is_file() and not c["force"]:
        print(f"[convert_ct2] {out} exists; --set convert.force=true to redo", file=sys.stderr)
        return
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        raise UserError("ctranslate2 is not installed: pip install -e '.[fast]'") from None
    convert_ct2(c["model"], out, quantization=c["quantization"], force=True)
    print(f"[convert_ct2] {c['model']} -> {out} ({c['quantization']})", file=sys.stderr)


if __name__ == "__main__":
    main()
