"""Peak memory and wall time of the export step (pretrain/export_mix.py) at 1x and 10x rows.

    python tests/tools/bench_export.py [--rows 10000] [--scales 1,10] [--out DIR]

Writes a synthetic task mix of ``rows x scale`` rows (every task, texts of
mix-like length, 500 distinct JPEG images per collection, 128x96 pixels)
and runs the export step on it with its default config (every format, parquet
with embedded images), measured as tests/tools/bench_memory.py measures a step:
the peak of the process tree's PSS and the main process's VmHWM, sampled every
20 ms. Prints a markdown table. A development tool: no product code imports it.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.tools.bench_memory import measure  # noqa: E402

IMAGES = 500
TASKS = {"capfilt": "web", "capfilt_match": "web", "mscoco": "coco", "vqav2_vqa": "coco",
         "llava_conversation": "coco", "imagenet_classify": "imagenet"}
ROOTS = {"web": "work/images", "coco": "raw/mscoco/images", "imagenet": "raw/imagenet/train"}


def image_name(coll: str, k: int) -> str:
    return {"web": f"{k:016x}.jpg", "coco": f"COCO_train2014_{k:012d}.jpg",
            "imagenet": f"n{k % 10:08d}/n{k % 10:08d}_{k}.JPEG"}[coll]


def write_images(base: Path) -> None:
    from PIL import Image
    r = random.Random(0)
    for coll, folder in ROOTS.items():
        for k in range(IMAGES):
            path = base / folder / image_name(coll, k)
            path.parent.mkdir(parents=True, exist_ok=True)
            im = Image.effect_noise((128, 96), 40 + k % 50).convert("RGB")
            im.save(path, format="JPEG", quality=85 + r.randrange(10))


def write_mix(path: Path, n: int) -> None:
    r = random.Random(n)
    tasks = list(TASKS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            task = tasks[i % len(tasks)]
            words = " ".join(r.choice(["image", "Bild", "图像", "صورة", "a", "dog", "on", "the"]) for _ in range(20))
            row = {"context": f"Describe the image briefly. {words}", "label": f"{words} {i}",
                   "image_id": image_name(TASKS[task], r.randrange(IMAGES)), "task": task, "lang": "en"}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10000, help="rows of the mix at 1x")
    ap.add_argument("--scales", default="1,10", help="comma-separated scales")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_export_"))
    lines = ["| scale | rows | peak MB (tree PSS) | main VmHWM MB | s | output MB |", "|---|---:|---:|---:|---:|---:|"]
    try:
        write_images(out)
        for scale in (float(s) for s in args.scales.split(",")):
            n = int(args.rows * scale)
            run = out / f"run_{scale:g}x"
            shutil.rmtree(run, ignore_errors=True)
            write_mix(run / "out" / "train" / "task_mix.jsonl", n)
            sets = [f"paths.raw_root={out}/raw", f"paths.work_dir={run}/work", f"paths.out_root={run}/out",
                    f"export.image_roots.web={out}/work/images"]
            res = measure([sys.executable, "pretrain/export_mix.py", *(x for s in sets for x in ("--set", s))],
                          run / "export.log")
            if res["rc"]:
                sys.exit(f"export failed (exit {res['rc']}), see {run / 'export.log'}")
            size = sum(p.stat().st_size for p in (run / "out" / "export").rglob("*") if p.is_file()) / 1e6
            lines.append(f"| {scale:g}x | {n} | {res['peak_tree_mb']} | {res['peak_main_mb']} | {res['seconds']} "
                         f"| {size:.0f} |")
            print(lines[-1], file=sys.stderr, flush=True)
            shutil.rmtree(run / "out" / "export")
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
