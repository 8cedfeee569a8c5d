"""Build a tiny random-weight causal LM (Llama architecture) with a chat
template, saved to a local folder, for serving with ``transformers serve`` in
tests of the OpenAI-compatible translation backend. No hub access: the
tokenizer is a byte-level BPE trained here on a few lines, the weights are
random (seeded), except that every reply is set to be the word " the" and
then the end token: a shared direction u is added to every token embedding,
the output row of " the" is 5u (so it wins the first step) and the output row
of the end token is the (normalised) embedding of " the" (so it follows it).
A request with max_tokens=1 is cut at the length limit (finish_reason
"length"). The reply is no translation; it exercises the plumbing.

    python tests/tools/tiny_lm.py --out work/models/tiny-lm
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

_LINES = ["A dog runs on the green grass near a lake.", "Translate into German.",
          "Two children are playing with a red ball in the park.", "Ein Hund läuft auf dem Gras."]
# A plain chat template: each message on its own line, then the assistant's turn.
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def build_tiny_lm(out_dir: str | Path, seed: int = 0) -> Path:
    """Write (once) the tokenizer and a random-weight LlamaForCausalLM to out_dir."""
    out = Path(out_dir)
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file() and (out / "model.safetensors").is_file():
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_LINES, trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=fast.vocab_size if hasattr(fast, "vocab_size") else len(fast),
                      hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=2048,
                      bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id)
    cfg.vocab_size = len(fast)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        emb, head = model.get_input_embeddings().weight, model.lm_head.weight
        u = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(seed + 1))
        u /= u.norm()
        emb += 0.05 * u
        the = fast.convert_tokens_to_ids(fast.tokenize(" the")[0])
        head[the] = 5.0 * u
        head[fast.eos_token_id] = 3.0 * emb[the] / emb[the].norm()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    print(build_tiny_lm(ap.parse_args(argv).out))


if __name__ == "__main__":
    main()
