"""Image-caption matching with CLIP-mined hard negatives (English).

Reads the English CapFilt intermediate (a slice: match.start, match.max_rows)
and its images, embeds captions and images with CLIP (cached on disk: a re-run
with other sampling settings embeds nothing), finds each image's nearest
captions with FAISS (exact inner product, top search.top_k), and writes one
row per input row, exactly half of them positives:

    {"id", "image_id", "caption", "original_caption", "match": "yes"|"no", "neg_rank": int|null}

A negative's caption is its image's rank-r nearest valid caption (r drawn from
negatives.ranks; the search window is widened when duplicates fill the top_k,
so r is clipped only beyond the number of valid captions) or, with
negatives.random_fraction, a random caption (neg_rank null). ``id`` (the
CapFilt row id) is kept beside the issue's keys: it seeds the template choice
downstream and traces a row back. Next: translate_match_train.py.

    python match/hard_match.py [--set paths.clip_model=...] [--set match.max_rows=600000]

Sharded embedding (e.g. on 4 GPUs), then one mining run (``SHARDS`` below):
    python -m common launch match.mine --set 'launch.devices=[cuda:0,cuda:1,cuda:2,cuda:3]'
or by hand, each shard (it prints the merge command, which runs the mining):
    python match/hard_match.py --set embed.only=true --set run.num_shards=4 --set run.shard_index=I
"""
from __future__ import annotations

import collections
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from common import lifecycle
from common.config import Config
from common.errors import UserError, entry_point
from common.jsonl import BadRows, atomic_open, dumps, write_jsonl
from common.report import Report
from common.shards import ShardRule, check_shard_args
from common.steptype import Step
from eval_data import decontam
from match.embed_step import update_cache
from match.negatives import assign_sides, mine_negatives
from match.rows import Pair, normalise_caption, read_pairs, text_key
from match.search import CaptionIndex
from match.settings import DEFAULTS, load_config

TASK = "capfilt_match"


def image_paths(pairs: list[Pair], image_root: Path) -> dict[str, Path]:
    return {p.image_id: image_root / p.image_id for p in pairs}


INDEX_CHUNK = 16384  # caption vectors converted to float32 at a time while the index is filled (48 MB at 768-d)


def caption_table(pairs: list[Pair], report: Report) -> tuple[list[str], list[str], dict[str, set[str]]]:
    """(distinct captions, their normalised forms, image -> normalised forms of its own captions)."""
    texts = list(dict.fromkeys(p.caption for p in pairs))
    position = {t: i for i, t in enumerate(texts)}
    norms = [normalise_caption(t) for t in texts]
    own_norms: dict[str, set[str]] = collections.defaultdict(set)
    for p in pairs:
        own_norms[p.image_id].add(norms[position[p.caption]])
    report.count("captions_distinct", len(texts))
    report.count("images_distinct", len(own_norms))
    return texts, norms, own_norms


def build_rows(pairs: list[Pair], text_cache, image_cache, cfg, report: Report) -> Iterator[dict]:
    """The output rows for the pairs whose image embedded, in input order.

    A generator: the search and the choice of negatives run before the first
    row is yielded; the rows themselves are streamed to the writer (600k row
    dicts would be about 0.5 GB)."""
    texts, norms, own_norms = caption_table(pairs, report)
    seed = cfg.at("match.seed")
    positive = assign_sides([p.id for p in pairs], seed)
    negative_rows = [i for i, pos in enumerate(positive) if not pos]

    t0 = time.time()
    keys = [text_key(t) for t in texts]
    index = CaptionIndex(dim=text_cache.dim, device=cfg.at("search.device"), total=len(keys),
                         chunks=(text_cache.gather(keys[s:s + INDEX_CHUNK]) for s in range(0, len(keys), INDEX_CHUNK)))
    del keys
    top_k, batch = cfg.at("search.top_k"), cfg.at("search.query_batch")

    def neighbors_of(image_ids: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        bar = tqdm(total=len(image_ids), desc="nearest captions", unit="img", disable=not cfg.at("embed.progress"))
        for start in range(0, len(image_ids), batch):
            chunk = image_ids[start:start + batch]
            for _, _, ids in index.search(image_cache.gather(chunk), top_k, batch):
                yield from zip(chunk, ids)
            bar.update(len(chunk))
        bar.close()

    def deeper(image_id: str, have: int) -> np.ndarray | None:
        # Duplicates and the image's own captions filled the window: search wider (rare).
        if have >= index.ntotal:
            return None
        return index.neighbors(image_cache.gather([image_id])[0], max(2 * have, 2 * top_k))

    counts: collections.Counter = collections.Counter()
    chosen = mine_negatives([p.id for p in pairs], [p.image_id for p in pairs], negative_rows, own_norms,
                            norms, neighbors_of, seed, cfg.at("negatives.ranks"),
                            cfg.at("negatives.random_fraction"), counts, deeper=deeper)
    report.extra["search"] = {"seconds": round(time.time() - t0, 2), "faiss_gpu": index.on_gpu,
                              "index_vectors": index.ntotal, "index_memory_bytes": index.memory_bytes,
                              "top_k": min(top_k, index.ntotal), "widened": counts.pop("searches_widened", 0)}
    del index
    for k, v in sorted(counts.items()):
        report.count(k, v)

    for i, p in enumerate(pairs):
        if positive[i]:
            report.count("positives")
            yield {"id": p.id, "image_id": p.image_id, "caption": p.caption,
                   "original_caption": p.caption, "match": "yes", "neg_rank": None}
        elif i in chosen:
            pos, rank = chosen[i]
            report.count("negatives")
            yield {"id": p.id, "image_id": p.image_id, "caption": texts[pos],
                   "original_caption": p.caption, "match": "no", "neg_rank": rank}
        else:
            report.skip("no valid negative caption", f"id {p.id}")


def without_eval_images(cfg, src: Path, pairs: list[Pair], report: Report) -> list[Pair]:
    """The pairs whose image (by the URL of its row in ``src``) is in no excluded
    evaluation set: the others are dropped and counted here, before mining and
    translation (``decontamination`` in the report; generate_match_train.py asserts it)."""
    dec = decontam.Decontaminator(cfg, "web")
    web = decontam.web_images(src, dec)
    kept = [p for p in pairs if not dec.drop(TASK, web.get(p.image_id, ()), "en")]
    report.count("rows_on_evaluation_images_dropped", len(pairs) - len(kept))
    dec.record(report)
    return kept


def run(cfg) -> Report:
    report = Report("hard_match")
    src = cfg.require_file("match.input")
    image_root = cfg.require_dir("paths.image_root")
    num_shards, shard_index = check_shard_args(cfg["run"])
    if num_shards > 1 and not cfg.at("embed.only"):
        raise UserError("run.num_shards > 1 shards the embedding pass only: run the shards with "
                        "--set embed.only=true, then once more with run.num_shards=1 to mine")
    bad = BadRows(max_bad=cfg.at("match.max_bad_rows"), key="match.max_bad_rows")
    pairs = read_pairs(src, bad, cfg.at("match.start"), cfg.at("match.max_rows"))
    report.count("rows_in", len(pairs))
    if bad.count:
        report.skip("bad input row", n=bad.count)
        report.examples["bad input row"] = bad.examples[:5]
    if not pairs:
        raise UserError(f"{src}: no usable rows in the configured slice")
    pairs = without_eval_images(cfg, src, pairs, report)

    images = image_paths(pairs, image_root)
    texts = {text_key(p.caption): p.caption for p in pairs}
    text_cache, image_cache, failed, stats = update_cache(cfg, texts, images, num_shards, shard_index)
    report.extra["embedding"] = stats
    for key in ("texts_cached", "texts_embedded", "images_cached", "images_embedded"):
        report.count(key, stats.get(key, 0))
    report.extra["embedding_passes"] = stats["embedding_passes"]
    if cfg.at("embed.only"):
        return report

    rows_per_image = collections.Counter(p.image_id for p in pairs)
    listing = []
    for image_id, reason in failed.items():
        kind = reason.split(" (")[0]
        report.skip(f"{kind} (rows)", image_id, n=rows_per_image[image_id])
        report.count("images_skipped")
        listing.append({"image_id": image_id, "reason": reason, "rows": rows_per_image[image_id]})
    write_jsonl(cfg.path("match.skipped_images"), listing)
    report.extra["skipped_images_file"] = str(cfg.path("match.skipped_images"))
    pairs = [p for p in pairs if p.image_id not in failed]
    if not pairs:
        raise UserError("no image could be read: see " + str(cfg.path("match.skipped_images")))

    n_out = 0
    with atomic_open(cfg.path("match.output")) as f:
        for row in build_rows(pairs, text_cache, image_cache, cfg, report):
            f.write(dumps(row) + "\n")
            n_out += 1
    report.count("rows_out", n_out)
    report.extra["output"] = str(cfg.path("match.output"))
    return report


def mine(cfg: Config, num_shards: int) -> str:
    """The merge of a sharded embedding: one mining run over the filled cache. It
    embeds what no shard did, so a shard that never ran costs time, not rows; say so."""
    cfg = Config({**cfg, "embed": {**cfg["embed"], "only": False}, "run": {"num_shards": 1, "shard_index": 0}})
    report = run(cfg)
    report.print()
    lifecycle.save_report(report, "match.mine", cfg)
    emb = report.extra.get("embedding", {})
    late = {k: emb.get(k, 0) for k in ("texts_embedded", "images_embedded") if emb.get(k, 0)}
    if late:
        print(f"warning: the mining run had to embed {late} that no embedding shard had (a shard of "
              f"{num_shards} did not finish or ran on other input?); the output is complete", file=sys.stderr)
    return f"mined {report.counts.get('rows_out', 0)} rows -> {cfg.path('match.output')}"


# Shards fill the embedding cache (keys by stable_hash % N, embed.only=true); the merge
# is the one mining run over it (python -m common launch match.mine).
SHARDS = ShardRule(device="embed", threads=False, worker_sets=("embed.only=true",), combine=mine)



STEP = Step("match.mine", "match.hard_match", "match", "CLIP embeddings, FAISS search, hard negatives",
            reads=("${match.input}", decontam.web_inputs), writes=("${match.output}",), after=("capfilt.english",),
            shaped_by=("match", "embed.model", "embed.max_text_tokens", "search", "negatives", "decontam"),
            defaults=DEFAULTS, rule=SHARDS)


@entry_point
def main(argv: list[str] | None = None) -> None:
    cfg = load_config(__doc__, argv)

    def work() -> lifecycle.Done:
        report = run(cfg)
        report.print()
        if cfg.at("embed.only") and cfg.at("run.num_shards") == 1:   # a partial run: no run record
            return lifecycle.Done(report, lambda: print("[hard_match] embed.only: the embedding cache is filled; "
                                                        "run again without it to mine", file=sys.stderr),
                                  record=False)
        return report

    lifecycle.run_step(STEP, cfg, argv, work, [("match.skipped_images", cfg.path("match.skipped_images"), False)])


if __name__ == "__main__":
    main()
