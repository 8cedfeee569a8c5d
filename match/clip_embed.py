"""CLIP text and image embeddings (transformers CLIPModel), L2-normalised, batched.

fp16 on GPU, fp32 on CPU. Texts are sorted by length before batching so a
batch pads little; images are decoded and preprocessed by a thread pool while
the model runs. A missing or unreadable image is reported back by position,
never fatal.
"""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from common.devices import resolve_device as common_resolve_device
from common.errors import UserError


def resolve_device(device: str) -> str:
    return common_resolve_device(device, "embed.device")


def resolve_dtype(device: str, dtype: str) -> str:
    """auto: float16 on a GPU (half the memory, tensor cores), float32 on CPU."""
    import torch
    if dtype == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    if not (isinstance(getattr(torch, dtype, None), torch.dtype) and getattr(torch, dtype).is_floating_point):
        raise UserError(f"embed.dtype={dtype!r} is not a torch floating-point dtype (float16, bfloat16, float32)")
    return dtype


class ClipEmbedder:
    def __init__(self, model_name: str, device: str = "auto", dtype: str = "auto",
                 max_text_tokens: int = 77, progress: bool = True):
        import torch
        from transformers import AutoProcessor, CLIPModel

        self.torch = torch
        self.device = resolve_device(device)
        dtype = resolve_dtype(self.device, dtype)
        try:
            model = CLIPModel.from_pretrained(model_name)
            self.processor = AutoProcessor.from_pretrained(model_name)
        except (OSError, ValueError) as e:
            raise UserError(f"embed.model: cannot load CLIP model {model_name!r}: {e}") from None
        self.model = model.to(self.device, getattr(torch, dtype)).eval()
        self.dtype = getattr(torch, dtype)
        self.max_text_tokens = max_text_tokens
        self.progress = progress
        self.dim = int(model.config.projection_dim)
        self.forward_batches = 0   # model calls made: a cached re-run makes none

    def _features(self, out) -> "torch.Tensor":
        # transformers 5 returns a model output whose pooler_output is projected; 4.x a tensor.
        feats = out if isinstance(out, self.torch.Tensor) else out.pooler_output
        feats = feats.float()
        return feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def embed_texts(self, texts: list[str], out: np.ndarray, batch: int) -> None:
        """Write the embedding of texts[i] into out[i]."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        tok = self.processor.tokenizer
        bar = tqdm(total=len(texts), desc="embed captions", unit="cap", disable=not self.progress)
        with self.torch.inference_mode():
            for start in range(0, len(order), batch):
                idx = order[start:start + batch]
                enc = tok([texts[i] for i in idx], padding=True, truncation=True,
                          max_length=self.max_text_tokens, return_tensors="pt").to(self.device)
                feats = self._features(self.model.get_text_features(**enc))
                self.forward_batches += 1
                out[np.asarray(idx)] = feats.cpu().numpy()
                bar.update(len(idx))
        bar.close()

    def _prepare(self, path: Path) -> tuple[np.ndarray | None, str | None]:
        from PIL import Image
        if not path.is_file():
            return None, "missing image file"
        try:
            with Image.open(path) as im:
                rgb = im.convert("RGB")
            # "pt" works for both the PIL and the torchvision image processors.
            pixels = self.processor.image_processor(images=[rgb], return_tensors="pt")["pixel_values"][0].numpy()
        except Exception as e:  # any decoder failure is a bad image, not a bad run
            return None, f"corrupt image ({type(e).__name__}: {str(e)[:120]})"
        return pixels, None

    def _prepared(self, paths: list[Path], workers: int,
                  window: int) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        """(i, pixels | None, reason) in order, decoded ahead by a thread pool; the
        window bounds the images held at once (a 224px image is 600 KB as float32)."""
        with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
            ahead: collections.deque = collections.deque()
            it = iter(enumerate(paths))
            for i, p in itertools.islice(it, window):
                ahead.append((i, pool.submit(self._prepare, p)))
            while ahead:
                i, fut = ahead.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    ahead.append((nxt[0], pool.submit(self._prepare, nxt[1])))
                pixels, reason = fut.result()
                yield i, pixels, reason

    def embed_images(self, paths: list[Path], out: np.ndarray, batch: int, workers: int,
                     on_fail: Callable[[int, str], None]) -> None:
        """Write the embedding of image paths[i] into out[i]; on_fail(i, reason) otherwise."""
        bar = tqdm(total=len(paths), desc="embed images", unit="img", disable=not self.progress)
        pending: list[tuple[int, np.ndarray]] = []

        def flush() -> None:
            pixels = self.torch.from_numpy(np.stack([p for _, p in pending])).to(self.device, self.dtype)
            with self.torch.inference_mode():
                feats = self._features(self.model.get_image_features(pixel_values=pixels))
            self.forward_batches += 1
            out[np.asarray([i for i, _ in pending])] = feats.cpu().numpy()
            pending.clear()

        for i, pixels, reason in self._prepared(paths, workers, 2 * batch):
            if pixels is None:
                on_fail(i, reason or "unreadable image")
            else:
                pending.append((i, pixels))
                if len(pending) >= batch:
                    flush()
            bar.update(1)
        if pending:
            flush()
        bar.close()
