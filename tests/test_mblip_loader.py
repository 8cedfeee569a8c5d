"""Every training and evaluation file the demo writes, read by mBLIP's own data
code (../shared/clients/mblip/data.py) with the settings of mBLIP's own configs.

For each output file the matching config of ../shared/clients/mblip/configs/
(datamodule + split) gives TokenizeCLM's and LoadTransformImage(Marvl)'s
arguments: template, target2str, text_target_column, image_root, extension,
train. The file is loaded with datasets.load_dataset("json"), mapped through
TokenizeCLM, every row is read through the image transform, and a batch is
collated with DataCollatorForVisualCLM. A file works when nothing raises and no
image fails to open (mBLIP substitutes zeros for such an image and goes on,
which is the silent failure this test exists to catch).

The image roots are laid out as the releases lay out their images, from the raw
annotation files themselves (never from our outputs): GQA `<imageId>.jpg`,
Flickr30k `<img_path>` / XVNLI `<Flikr30kID>.jpg` (with the COCO images named
in the POPE and Karpathy files, as in mBLIP's flickr_image_root), XM3600 `<image/key>.jpg` (and MaXM's `<image_id>.jpg` there), MaRVL
`<language>/images/<concept>/<file>` and NLVR2's official
`train/<directory>/`, `dev/`, `test1/` folders. Images the fixtures ship are
used as they are; the others are written as tiny pictures under the release's
name. ImageNet uses the fixture's `imagenet/train` (mBLIP's
imagenet_image_root), CapFilt the demo's downloaded images.

Stand-ins (../shared/clients/README.md allows them): a word-level tokenizer
trained here on the files' own text and saved under a name with "bloom" in it
(so TokenizeCLM takes its decoder-only path, as for mBLIP's BLOOMZ), a small
processor in place of Blip2Processor (the hub is out of reach), and, where
torchvision is not installable beside the CPU torch, minimal torchvision
transforms.
"""
from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import io
import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest

from tests.conftest import FIXTURES_RAW, REPO

CLIENTS = REPO.parent / "shared" / "clients" / "mblip"
IG = FIXTURES_RAW / "iglue" / "datasets"
SIZE = 32

# Our file (relative to out/) -> (mBLIP datamodule config, split). mBLIP's own
# file names are in its configs (e.g. xgqa_input_test_de.json for our
# xgqa_test_de.jsonl); docs/mblip.md ("Loading the outputs in mBLIP") lists them.
FILE_CONFIG = [
    (r"train/[a-z0-9_]+\.jsonl", "mblip_train", "train"),
    (r"eval/xgqa/xgqa_train\.jsonl", "mblip_xgqa", "train"),
    (r"eval/xgqa/xgqa_val_\w+\.jsonl", "mblip_xgqa", "val"),
    (r"eval/xgqa/xgqa_test_\w+\.jsonl", "mblip_xgqa", "test"),
    (r"eval/xvnli/xvnli_train\.jsonl", "mblip_xvnli", "train"),
    (r"eval/xvnli/xvnli_val_\w+\.jsonl", "mblip_xvnli", "val"),
    (r"eval/xvnli/xvnli_test_\w+\.jsonl", "mblip_xvnli", "test"),
    (r"eval/marvl/nlvr2_train_en\.jsonl", "mblip_marvl", "train"),
    (r"eval/marvl/nlvr2_dev_\w+\.jsonl", "mblip_marvl", "val"),
    (r"eval/marvl/(marvl|nlvr2)_test_\w+\.jsonl", "mblip_marvl", "test"),
    (r"eval/xflickrco/flickr30k_train\.jsonl", "mblip_flickr", "train"),
    (r"eval/xflickrco/flickr30k_val_\w+\.jsonl", "mblip_flickr", "val"),
    (r"eval/xflickrco/(flickr30k|xflickrco)_test_\w+\.jsonl", "mblip_flickr", "test"),
    (r"eval/xm3600/xm3600_test_\w+\.jsonl", "mblip_xm3600", "test"),
    (r"eval/maxm/maxm_test_\w+\.jsonl", "mblip_maxm", "test"),
    (r"eval/pope/pope_\w+\.jsonl", "mblip_halu_pope", "test"),
    (r"eval/chair/chair_\w+\.jsonl", "mblip_halu_chair", "test"),
    (r"eval/mscoco/mscoco_val\.jsonl", "mblip_mscoco", "val"),
    (r"eval/mscoco/mscoco_test\.jsonl", "mblip_mscoco", "test"),
    (r"eval/vqav2/vqav2_val\.jsonl", "mblip_vqa2", "val"),
]


def config_for(rel: str) -> tuple[str, str]:
    hits = [(c, s) for pattern, c, s in FILE_CONFIG if re.fullmatch(pattern, rel)]
    assert len(hits) == 1, f"{rel}: no (or more than one) mBLIP config matches it"
    return hits[0]


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def loader_settings(config: str, split: str) -> tuple[dict, dict]:
    """(TokenizeCLM kwargs, image transform kwargs + '_target_') of a config's split:
    the datamodule's _method_, overridden by the split's (or its first dataset's)."""
    import yaml
    cfg = yaml.safe_load((CLIENTS / "configs" / "datamodule" / f"{config}.yaml").read_text())["dataset_cfg"]
    method = cfg["_method_"]
    part = cfg[split]
    if "_datasets_" in part:
        part = next(iter(part["_datasets_"].values()))
    method = _merge(method, part.get("_method_", {}))
    return dict(method["map"]["function"]), dict(method["set_transform"]["transform"])


# ---- stand-ins for what needs the hub or a CUDA torchvision -------------------------------

def _to_tensor(img, mean, std):
    import numpy as np
    import torch
    a = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (a - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


MEAN, STD = [0.48, 0.46, 0.41], [0.27, 0.26, 0.28]


class SmallProcessor:
    """Blip2Processor's image side: size/image_mean/image_std and __call__(image, return_tensors)."""

    def __init__(self):
        self.image_processor = types.SimpleNamespace(size={"height": SIZE, "width": SIZE},
                                                     image_mean=MEAN, image_std=STD)

    @classmethod
    def from_pretrained(cls, name, **kw):
        return cls()

    def __call__(self, image, return_tensors="pt"):
        from PIL import Image
        return {"pixel_values": _to_tensor(image.resize((SIZE, SIZE), Image.BICUBIC), MEAN, STD)[None]}


def _small_torchvision() -> dict[str, types.ModuleType]:
    from PIL import Image

    class Compose:
        def __init__(self, steps):
            self.steps = steps

        def __call__(self, x):
            for s in self.steps:
                x = s(x)
            return x

    class RandomResizedCrop:
        def __init__(self, size, scale=(0.5, 1.0), interpolation=None):
            self.size = size

        def __call__(self, img):
            return img.resize((self.size, self.size), Image.BICUBIC)

    class RandomHorizontalFlip:
        def __call__(self, img):
            return img

    class ToTensor:
        def __call__(self, img):
            return _to_tensor(img, [0, 0, 0], [1, 1, 1])

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = mean, std

        def __call__(self, t):
            import torch
            return (t - torch.tensor(self.mean)[:, None, None]) / torch.tensor(self.std)[:, None, None]

    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    tr.transforms = types.SimpleNamespace(Compose=Compose, RandomResizedCrop=RandomResizedCrop,
                                          RandomHorizontalFlip=RandomHorizontalFlip, ToTensor=ToTensor,
                                          Normalize=Normalize)
    tr.InterpolationMode = types.SimpleNamespace(BICUBIC="bicubic")
    tv.transforms = tr
    for m in (tv, tr):
        m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)
    return {"torchvision": tv, "torchvision.transforms": tr}


@pytest.fixture(scope="module")
def mblip_data():
    if not (CLIENTS / "data.py").is_file():
        pytest.skip(f"mBLIP's loader not found at {CLIENTS}")
    pytest.importorskip("datasets")
    # transformers looks for torchvision when imported: let it see the real state first
    from transformers import AutoTokenizer, Blip2Processor, PreTrainedTokenizerBase  # noqa: F401
    saved = dict(sys.modules)
    try:
        import torchvision  # noqa: F401
    except Exception:
        sys.modules.update(_small_torchvision())
    try:
        spec = importlib.util.spec_from_file_location("mblip_client_data", CLIENTS / "data.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for k in set(sys.modules) - set(saved):
            if k.startswith("torchvision"):
                del sys.modules[k]
    module.Blip2Processor = SmallProcessor
    return module


# ---- the image store, laid out as the releases lay it out ----------------------------------

def _records(path: Path):
    """Every JSON record of a raw file (JSON list, dict or JSON Lines); bad lines are passed over."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else list(data.values()) if isinstance(data, dict) else []
        return [r for r in items if isinstance(r, dict)]
    except json.JSONDecodeError:
        out = []
        for line in text.splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                r = json.loads(line)
                if isinstance(r, dict):
                    out.append(r)
        return out


def _picture(path: Path) -> None:
    from PIL import Image
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 30, 200)).save(path)


def _nlvr2_paths(r: dict) -> list[str]:
    """NLVR2's official image layout: train/<directory>/<id>-img{0,1}.png, dev/..., test1/..."""
    parts = str(r.get("identifier", "")).split("-")
    if len(parts) != 4 or (parts[0] == "train" and not r.get("directory")):
        return []
    split, stem = parts[0], "-".join(parts[:3])
    folder = f"train/{r['directory']}" if split == "train" else split
    return [f"{folder}/{stem}-img{i}.png" for i in (0, 1)]


def image_store(base: Path, work: Path) -> dict[str, object]:
    roots = {name: base / name for name in ("gqa", "flickr", "xm3600", "marvl")}
    for p in (IG / "gqa" / "annotations").glob("*.json"):
        for r in _records(p):
            if isinstance(r.get("img_id"), str):
                _picture(roots["gqa"] / f"{r['img_id']}.jpg")
    for p in (IG / "xGQA" / "annotations").rglob("*.json"):
        for r in _records(p):
            if isinstance(r.get("imageId"), str):
                _picture(roots["gqa"] / f"{r['imageId']}.jpg")
    shutil.copytree(FIXTURES_RAW / "mscoco" / "images", roots["flickr"], dirs_exist_ok=True)
    coco = [r.get("image") for p in (FIXTURES_RAW / "pope").rglob("*.json") for r in _records(p)]
    coco += [im.get("filename") for im in
             json.loads((FIXTURES_RAW / "mscoco" / "dataset_coco.json").read_text())["images"]]
    for name in coco:                                             # COCO's own file names
        if isinstance(name, str) and re.fullmatch(r"COCO_(train|val)2014_\d{12}\.jpg", name):
            _picture(roots["flickr"] / name)
    for p in list((IG / "flickr30k").rglob("*.jsonl")) + list((IG / "xFlickrCO").rglob("*.jsonl")):
        for r in _records(p):
            if isinstance(r.get("img_path"), str):
                _picture(roots["flickr"] / r["img_path"])
    for p in (IG / "XVNLI").rglob("*.jsonl"):
        for r in _records(p):
            if isinstance(r.get("Flikr30kID"), str):
                _picture(roots["flickr"] / f"{r['Flikr30kID']}.jpg")
    shutil.copytree(FIXTURES_RAW / "xm3600" / "images", roots["xm3600"], dirs_exist_ok=True)
    for r in _records(FIXTURES_RAW / "xm3600" / "captions.jsonl"):
        if isinstance(r.get("image/key"), str):
            _picture(roots["xm3600"] / f"{r['image/key']}.jpg")
    for p in (FIXTURES_RAW / "maxm").glob("maxm_v1_*.json"):      # MaXM's images are XM3600's
        for a in json.loads(p.read_text(encoding="utf-8")).get("annotations", []):
            if isinstance(a, dict) and isinstance(a.get("image_id"), str):
                _picture(roots["xm3600"] / f"{a['image_id']}.jpg")
    shutil.copytree(IG / "marvl" / "images", roots["marvl"], dirs_exist_ok=True)
    for p in (IG / "marvl" / "zero_shot" / "annotations").glob("*.jsonl"):
        for r in _records(p):
            if all(isinstance(r.get(k), str) for k in ("language", "concept", "left_img", "right_img")):
                for side in ("left_img", "right_img"):
                    _picture(roots["marvl"] / r["language"] / "images" / r["concept"] / r[side])
    for p in (IG / "nlvr2" / "annotations").glob("*.jsonl"):
        for r in _records(p):
            for rel in _nlvr2_paths(r):
                _picture(roots["marvl"] / rel)
    return {
        "${train_image_root}": str(work / "images"),
        "${flickr_image_root}": str(roots["flickr"]),
        "${imagenet_image_root}": str(FIXTURES_RAW / "imagenet" / "train"),
        "${gqa_image_root}": str(roots["gqa"]),
        "${xm3600_image_root}": str(roots["xm3600"]),
        "${marvl_img_root}": str(roots["marvl"]),
    }


def word_tokenizer(texts: list[str], out: Path) -> Path:
    """A word-level tokenizer trained on the files' own text, saved for AutoTokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "</s>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    fast.save_pretrained(out)
    return out


def _resolve(value, roots: dict, llm: str):
    if isinstance(value, list):
        return [_resolve(v, roots, llm) for v in value]
    if value == "${llm}":
        return llm
    if value == "${blip_model}":
        return "Salesforce/blip2-flan-t5-xl"      # SmallProcessor stands in for it
    if value == "${image_size}":
        return SIZE
    if isinstance(value, str) and value.startswith("${"):
        assert value in roots, f"no image root for {value}"
        return roots[value]
    return value


def load_with_mblip(data, path: Path, config: str, split: str, roots: dict, llm: str, cache: Path) -> int:
    """Load one file the way mBLIP's datamodule does; return its row count."""
    import datasets
    tok_kw, img_kw = loader_settings(config, split)
    tok_kw = {k: _resolve(v, roots, llm) for k, v in tok_kw.items() if k != "_target_"}
    target = img_kw.pop("_target_").rsplit(".", 1)[1]
    img_kw = {k: _resolve(v, roots, llm) for k, v in img_kw.items()}
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache))
    ds = ds.map(data.TokenizeCLM(**tok_kw), batched=True, load_from_cache_file=False)
    transform = getattr(data, target)(**img_kw)
    ds.set_transform(transform)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rows = [ds[i] for i in range(len(ds))]
    assert not transform.error_images and "Failed to load" not in printed.getvalue(), \
        f"{path} with {config}/{split}: images that fail to open: {sorted(transform.error_images)[:5]}"
    collate = data.DataCollatorForVisualCLM(tokenizer=transform_tokenizer(llm))
    batch = collate(rows[:8])
    assert batch["pixel_values"].shape[0] == min(8, len(rows))
    assert batch["input_ids"].shape[0] == batch["labels"].shape[0] == min(8, len(rows))
    return len(rows)


def transform_tokenizer(llm: str):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(llm)


def test_mblip_loader_reads_every_demo_file(mblip_data, demo_out, tmp_path):
    out, work = demo_out / "out", demo_out / "work"
    files = sorted(p for p in out.rglob("*.jsonl") if not p.name.endswith(".rejects.jsonl"))
    rels = [p.relative_to(out).as_posix() for p in files]
    texts = []
    for p in files:
        for line in p.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            texts += [str(r.get("context", "")), str(r.get("label", ""))]
    texts += [loader_settings(*config_for(rel))[0].get("template", "") for rel in rels]
    llm = str(word_tokenizer(texts, tmp_path / "tiny-bloomz"))
    roots = image_store(tmp_path / "images", work)
    loaded = {}
    for path, rel in zip(files, rels):
        config, split = config_for(rel)
        loaded[rel] = load_with_mblip(mblip_data, path, config, split, roots, llm, tmp_path / "hf")
        assert loaded[rel] > 0, f"{rel} is empty"
    # every family of the demo went through: the mix, each task file, each benchmark
    assert "train/task_mix.jsonl" in loaded and "eval/marvl/marvl_test_zh.jsonl" in loaded
    assert {rel.split("/")[1] for rel in loaded if rel.startswith("eval/")} == {
        "xgqa", "xvnli", "marvl", "xflickrco", "xm3600", "maxm", "pope", "chair", "mscoco", "vqav2"}
    print(f"mBLIP loader: {len(loaded)} files, {sum(loaded.values())} rows")


def test_marvl_labels_are_the_releases_booleans(demo_out):
    """mBLIP maps MaRVL/NLVR2 labels through target2str {"True": "yes", "False": "no"}."""
    for p in (demo_out / "out" / "eval" / "marvl").glob("*.jsonl"):
        for line in p.read_text().splitlines():
            r = json.loads(line)
            assert r["text_label"] in ("True", "False") and r["label"] in ("", r["text_label"]), (p, r)


def test_ids_as_the_releases_give_them(demo_out):
    """mBLIP adds extension ".jpg" to xGQA, XVNLI and XM3600 ids, and reads ImageNet
    from .../imagenet/train: the ids carry neither."""
    out = demo_out / "out"
    for bench in ("xgqa", "xvnli", "xm3600"):
        ids = [json.loads(x)["image_id"] for p in (out / "eval" / bench).glob("*.jsonl")
               for x in p.read_text().splitlines()]
        assert ids and not any(i.endswith(".jpg") for i in ids), bench
    ids = [json.loads(x)["image_id"] for x in (out / "train" / "imagenet_classify.jsonl").read_text().splitlines()]
    assert ids and all((FIXTURES_RAW / "imagenet" / "train" / i).is_file() for i in ids)
