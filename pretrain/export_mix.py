"""Export the task mix (train/task_mix.jsonl) for other trainers, by config:

- ``llava``: LLaVA conversation JSON (LLaVA, LLaVA-NeXT, Pangea): one JSON list
  of {"id", "image", "conversations": [{"from": "human", "value": "<image>\\n"
  + context}, {"from": "gpt", "value": label}]}, ``image`` is
  ``<collection>/<image_id>`` (or relative to ``export.llava.image_root``). A mix row is one question-answer turn (the
  LLaVA conversations are split into turns, translated and drawn one by one),
  so each row is one human/gpt pair;
- ``parquet``: Hugging Face ``datasets`` parquet shards with an ``Image``
  feature (the image bytes embedded, or only their paths:
  ``export.parquet.embed_images``), loaded by ``load_dataset("parquet", ...)``;
- ``webdataset``: tar shards of ``<key>.jpg`` + ``<key>.json`` (the row),
  each at most ``export.webdataset.max_shard_bytes``, as img2dataset writes them.

A row's image is ``<root>/<image_id>``, the root by the row's task
(``export.task_images``: CapFilt and matching the download folder, COCO tasks
the flat COCO folder, ImageNet ``imagenet/train``; ``export.image_roots``). A
row whose image is missing is skipped in every format, counted and reported.
Every format gets the same rows, ids ``%09d`` of the row's place in the mix.
One pass over the mix, one image in memory at a time (parquet: one row group):
memory is flat in the number of rows. Same input, same bytes. Each file is
written atomically; shards an earlier, longer run left are removed at the end.

  python pretrain/export_mix.py [--config configs/export_mix.yaml] [--set key=value ...]
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
from pathlib import Path

from common import lifecycle
from common.config import REPO_ROOT, free_mapping, parse_args
from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, dumps, read_jsonl
from common.report import Report
from common.steptype import Step

CONFIG = str(REPO_ROOT / "configs" / "export_mix.yaml")
FORMATS = ("llava", "parquet", "webdataset")
KEYS = ("context", "label", "image_id", "task", "lang")
DEFAULTS = {
    "export": {
        "input": "${paths.out_root}/train/task_mix.jsonl",
        "out_dir": "${paths.out_root}/export",
        "formats": list(FORMATS),
        # The folder each image collection's ids are relative to (common/FORMATS.md).
        "image_roots": {"web": "${paths.image_root}", "coco": "${paths.coco_images}",
                        "imagenet": "${paths.imagenet_root}/train"},
        # The collection of each task's images.
        "task_images": free_mapping(capfilt="web", capfilt_match="web", mscoco="coco", vqav2_vqa="coco",
                                    vqav2_vqg="coco", aokvqa_cot="coco", aokvqa_explain="coco",
                                    llava_detail="coco", llava_conversation="coco",
                                    imagenet_classify="imagenet", imagenet_decide="imagenet"),
        # image_root "": "image" is "<collection>/<image_id>" (a folder with one link per
        # collection is the image folder); a folder: the image's path relative to it.
        "llava": {"file": "${export.out_dir}/llava/train.json", "image_root": ""},
        "parquet": {"dir": "${export.out_dir}/parquet", "embed_images": True,
                    "rows_per_shard": 10000, "rows_per_group": 100},
        "webdataset": {"dir": "${export.out_dir}/webdataset", "max_shard_bytes": 1_000_000_000,
                       "max_shard_rows": 10000, "jpeg_quality": 95},
        "max_bad_rows": 0,
    },
}
# The features the parquet files declare (datasets reads them from the schema metadata).
HF_FEATURES = {"id": {"dtype": "string", "_type": "Value"}, "image": {"_type": "Image"},
               **{k: {"dtype": "string", "_type": "Value"} for k in KEYS}}
SHARD = "train-{:05d}"


# -- config --------------------------------------------------------------------
def positive(e: dict, dotted: str) -> int:
    section, key = dotted.split(".")
    value = e[section][key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"export.{dotted}: need a positive integer, got {value!r}")
    return value


def check_config(cfg) -> dict:
    """The export section, checked before any work (UserError names the key)."""
    e = cfg.at("export")
    formats = e["formats"]
    if not formats or any(f not in FORMATS for f in formats) or len(set(formats)) != len(formats):
        raise UserError(f"export.formats: need a non-empty list of distinct formats from {list(FORMATS)}, "
                        f"got {formats!r}")
    for task, name in e["task_images"].items():
        if name not in e["image_roots"]:
            raise UserError(f"export.task_images.{task}: {name!r} is not one of export.image_roots "
                            f"({', '.join(e['image_roots'])})")
    for dotted in ("parquet.rows_per_shard", "parquet.rows_per_group", "webdataset.max_shard_bytes",
                   "webdataset.max_shard_rows", "webdataset.jpeg_quality"):
        positive(e, dotted)
    if e["webdataset"]["jpeg_quality"] > 100:
        raise UserError(f"export.webdataset.jpeg_quality: need 1 to 100, got {e['webdataset']['jpeg_quality']}")
    if e["max_bad_rows"] < 0:
        raise UserError(f"export.max_bad_rows: need 0 or more, got {e['max_bad_rows']}")
    return e


def check_row(row: dict) -> str | None:
    if set(row) != set(KEYS):
        return "keys must be exactly " + ", ".join(KEYS)
    if not all(isinstance(row[k], str) and row[k] for k in KEYS):
        return "every value must be a non-empty string"
    return None


# -- images --------------------------------------------------------------------
class Images:
    """Finds a row's image file: ``<export.image_roots[task_images[task]]>/<image_id>``."""

    def __init__(self, cfg, e: dict):
        self.cfg, self.e = cfg, e
        self.roots: dict[str, Path] = {}

    def root(self, task: str) -> tuple[str, Path]:
        name = self.e["task_images"].get(task)
        if name is None:
            raise UserError(f"export.task_images.{task}: no image collection set for task {task!r}")
        if name not in self.roots:
            root = self.cfg.path(f"export.image_roots.{name}")
            if not root.is_dir():
                raise UserError(f"export.image_roots.{name}: image folder not found: {root}")
            self.roots[name] = root
        return name, self.roots[name]

    def find(self, row: dict) -> tuple[str, Path | None]:
        name, root = self.root(row["task"])
        rel = Path(row["image_id"])
        if rel.is_absolute() or ".." in rel.parts:
            return name, None
        path = root / rel
        return name, path if path.is_file() else None


# -- writers -------------------------------------------------------------------
class _Atomic:
    """An atomic_open kept open across calls: ``close`` renames it into place,
    ``abort`` removes the temporary."""

    def __init__(self, path: Path):
        self.cm = atomic_open(path, "wb")
        self.f = self.cm.__enter__()

    def close(self) -> None:
        self.cm.__exit__(None, None, None)

    def abort(self) -> None:
        try:
            raise RuntimeError("export aborted")
        except RuntimeError as err:
            self.cm.__exit__(RuntimeError, err, err.__traceback__)


class LlavaWriter:
    """One JSON list, written item by item."""

    def __init__(self, e: dict, cfg):
        self.path = cfg.path("export.llava.file")
        root = e["llava"]["image_root"]
        self.root = os.path.abspath(os.path.expanduser(root)) if root else None
        self.out = _Atomic(self.path)
        self.out.f.write(b"[")
        self.rows = 0

    def add(self, key: str, row: dict, image: Path, data: bytes | None, collection: str) -> None:
        name = Path(os.path.relpath(os.path.abspath(image), self.root)).as_posix() if self.root \
            else f"{collection}/{row['image_id']}"
        item = {"id": key, "image": name,
                "conversations": [{"from": "human", "value": "<image>\n" + row["context"]},
                                  {"from": "gpt", "value": row["label"]}]}
        self.out.f.write(((",\n" if self.rows else "\n") + dumps(item)).encode("utf-8"))
        self.rows += 1

    def close(self) -> dict:
        self.out.f.write(b"\n]\n")
        self.out.close()
        return {"files": [str(self.path)], "rows": self.rows}

    def abort(self) -> None:
        self.out.abort()


class Shards:
    """Numbered shard files in one folder (train-00000.<ext>, ...)."""

    def __init__(self, folder: Path, ext: str):
        self.folder, self.ext = folder, ext
        self.files: list[Path] = []
        self.current: _Atomic | None = None

    def open(self) -> _Atomic:
        path = self.folder / (SHARD.format(len(self.files)) + self.ext)
        self.files.append(path)
        self.current = _Atomic(path)
        return self.current

    def close_current(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None

    def finish(self) -> list[str]:
        """Close the last shard; remove shards of an earlier run past this run's count."""
        self.close_current()
        pattern = re.compile(r"train-(\d{5})" + re.escape(self.ext) + "$")
        for p in sorted(self.folder.glob("train-*" + self.ext)):
            m = pattern.match(p.name)
            if m and int(m.group(1)) >= len(self.files):
                p.unlink()
        return [str(p) for p in self.files]

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None


class ParquetWriter:
    """Parquet shards of ``rows_per_shard`` rows, written ``rows_per_group`` rows at a time."""

    def __init__(self, e: dict, cfg):
        import pyarrow as pa
        self.pa = pa
        p = e["parquet"]
        self.embed, self.per_shard, self.per_group = p["embed_images"], p["rows_per_shard"], p["rows_per_group"]
        image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        self.schema = pa.schema([("id", pa.string()), ("image", image), *((k, pa.string()) for k in KEYS)],
                                metadata={"huggingface": json.dumps({"info": {"features": HF_FEATURES}})})
        self.shards = Shards(cfg.path("export.parquet.dir"), ".parquet")
        self.writer = None
        self.buffer: list[dict] = []
        self.in_shard = self.rows = 0

    def add(self, key: str, row: dict, image: Path, data: bytes | None, collection: str) -> None:
        picture = {"bytes": data, "path": row["image_id"]} if self.embed \
            else {"bytes": None, "path": os.path.abspath(image)}
        self.buffer.append({"id": key, "image": picture, **{k: row[k] for k in KEYS}})
        self.rows += 1
        self.in_shard += 1
        if len(self.buffer) >= self.per_group or self.in_shard >= self.per_shard:
            self.flush()
        if self.in_shard >= self.per_shard:
            self.end_shard()

    def flush(self) -> None:
        import pyarrow.parquet as pq
        if not self.buffer:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.shards.open().f, self.schema)
        self.writer.write_table(self.pa.Table.from_pylist(self.buffer, schema=self.schema))
        self.buffer = []

    def end_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.shards.close_current()
        self.in_shard = 0

    def close(self) -> dict:
        self.flush()
        self.end_shard()
        return {"files": self.shards.finish(), "rows": self.rows, "embed_images": self.embed}

    def abort(self) -> None:
        if self.writer is not None:   # its footer goes to the temporary, which abort removes
            self.writer.close()
            self.writer = None
        self.shards.abort()


def as_jpeg(data: bytes, quality: int) -> tuple[bytes, bool]:
    """The image as JPEG bytes: JPEG files as they are, others re-encoded (RGB)."""
    if data[:3] == b"\xff\xd8\xff":
        return data, False
    from PIL import Image
    buf = io.BytesIO()
    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), True


class TarWriter:
    """WebDataset tar shards: ``<key>.jpg`` + ``<key>.json``, each shard at most
    ``max_shard_bytes`` (a sample bigger than that alone) and ``max_shard_rows`` samples."""

    def __init__(self, e: dict, cfg):
        w = e["webdataset"]
        self.max_bytes, self.max_rows, self.quality = w["max_shard_bytes"], w["max_shard_rows"], w["jpeg_quality"]
        self.shards = Shards(cfg.path("export.webdataset.dir"), ".tar")
        self.tar: tarfile.TarFile | None = None
        self.size = self.in_shard = self.rows = self.reencoded = 0

    @staticmethod
    def member(name: str, payload: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
        info = tarfile.TarInfo(name)   # fixed owner, mode and time: same input, same bytes
        info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = \
            len(payload), 0, 0o644, 0, 0, "", ""
        return info, io.BytesIO(payload)

    def add(self, key: str, row: dict, image: Path, data: bytes | None, collection: str) -> None:
        jpeg, reencoded = as_jpeg(data, self.quality)
        self.reencoded += reencoded
        meta = dumps({"id": key, **{k: row[k] for k in KEYS}}).encode("utf-8")
        size = sum(512 + -(-len(b) // 512) * 512 for b in (jpeg, meta))
        if self.tar is not None and (self.file_size(self.size + size) > self.max_bytes
                                     or self.in_shard >= self.max_rows):
            self.end_shard()
        if self.tar is None:
            self.tar = tarfile.open(fileobj=self.shards.open().f, mode="w", format=tarfile.USTAR_FORMAT)
        for name, payload in ((f"{key}.jpg", jpeg), (f"{key}.json", meta)):
            self.tar.addfile(*self.member(name, payload))
        self.size += size
        self.in_shard += 1
        self.rows += 1

    @staticmethod
    def file_size(members: int) -> int:
        """The tar file's size: its members, two zero blocks, padded to a record."""
        return -(-(members + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE

    def end_shard(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.tar = None
        self.shards.close_current()
        self.size = self.in_shard = 0

    def close(self) -> dict:
        self.end_shard()
        return {"files": self.shards.finish(), "rows": self.rows, "reencoded_to_jpeg": self.reencoded}

    def abort(self) -> None:
        self.shards.abort()


WRITERS = {"llava": LlavaWriter, "parquet": ParquetWriter, "webdataset": TarWriter}


# -- the step ------------------------------------------------------------------
def export(cfg, e: dict, report: Report) -> dict:
    """One pass over the mix: each row whose image exists goes to every format."""
    images = Images(cfg, e)
    writers = {name: WRITERS[name](e, cfg) for name in e["formats"]}
    need_bytes = "webdataset" in writers or ("parquet" in writers and e["parquet"]["embed_images"])
    bad = BadRows(max_bad=e["max_bad_rows"], key="export.max_bad_rows")
    mix = cfg.path("export.input")
    try:
        for index, row in enumerate(read_jsonl(mix, bad, check_row)):
            report.count("rows_in")
            collection, path = images.find(row)
            if path is None:
                report.skip(f"image not found under export.image_roots.{collection}",
                            f"row {index} ({row['task']}): {row['image_id']}", keep=20)
                report.count(f"missing_images_{collection}")
                continue
            data = path.read_bytes() if need_bytes else None
            key = f"{index:09d}"
            for w in writers.values():
                w.add(key, row, path, data, collection)
            report.count("rows_out")
        out = {name: w.close() for name, w in writers.items()}
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    report.count("bad_rows", bad.count)
    return out


STEP = Step("export", "pretrain.export_mix", "export_mix", "export the mix as LLaVA JSON, parquet and WebDataset",
            reads=("${export.input}",), writes=("${export.out_dir}",), after=("merge",),
            shaped_by=("export",), defaults=DEFAULTS)


@entry_point
def main(argv=None) -> None:
    cfg = parse_args(__doc__, DEFAULTS, CONFIG, argv)
    e = check_config(cfg)
    cfg.require_file("export.input")
    folders = [(f"export.{f}.dir", cfg.path(f"export.{f}.dir"), True) for f in ("parquet", "webdataset")
               if f in e["formats"]]
    files = [("export.llava.file", cfg.path("export.llava.file"), False)] if "llava" in e["formats"] else []
    lifecycle.run_step(STEP, cfg, argv, lambda: write_all(cfg, e), folders + files)


def write_all(cfg, e: dict) -> Report:
    """Every chosen format, in one pass over the mix."""
    cfg.path("export.out_dir").mkdir(parents=True, exist_ok=True)
    report = Report("export")
    formats = export(cfg, e, report)
    report.extra["formats"] = formats
    report.print()
    for name, f in formats.items():
        print(f"{name}: {f['rows']} rows -> {len(f['files'])} file(s) in {Path(f['files'][0]).parent}"
              if f["files"] else f"{name}: no rows", file=sys.stderr)
    return report

if __name__ == "__main__":
    main()
