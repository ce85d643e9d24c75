"""deepatlas's GPT against Hugging Face ``transformers``' GPT2LMHeadModel, same size, same
data, same wall time.

    python benchmarks/gpt_peer.py [--seconds 150] [--out results/benchmarks]

Both models are built from a config of the ``gpt-austen`` recipe's size (4 layers, 4 heads,
d_model 128, context 128, the character vocabulary; no pretrained weights: the peer is
``GPT2LMHeadModel(GPT2Config(...))``) and trained by the same loop on the same random windows
of the ``austen`` training text (``TokenWindows``, seed 0): AdamW (lr 3e-3, betas 0.9/0.99,
weight decay 0.1), 100 warm-up steps then a constant rate, clipping at 1.0, batch 32, fp32,
for the same number of seconds. Measured:

- training tokens per second (steps after the first 5, which warm the allocator up);
- held-out loss (nats per character, the validation 5% of each novel) when time is up;
- generation tokens per second with the KV cache: batch 1, a 16-token prompt, 112 new tokens
  sampled at temperature 1 (both stay inside the 128-token context, which GPT-2's learned
  positions cannot exceed).

Needs ``pip install transformers`` (not a deepatlas dependency) and the austen set
(``deepatlas data get austen``). Run by hand, never by the tests; the result goes to
``results/benchmarks/gpt-peer-<host>.json``.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from deepatlas.data.corpus import TokenWindows, load_corpus
from deepatlas.data.tokenize import CharTokenizer
from deepatlas.models.gpt import GPT, GPTConfig
from deepatlas.tasks.language_model import held_out_loss
from deepatlas.train.runinfo import write_result

LAYERS, HEADS, D_MODEL, CONTEXT, BATCH = 4, 4, 128, 128, 32


class HFAdapter(torch.nn.Module):
    """GPT2LMHeadModel behind deepatlas's ``model(idx) -> logits`` call."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(vocab_size=vocab, n_positions=CONTEXT, n_embd=D_MODEL,
                            n_layer=LAYERS, n_head=HEADS, resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, tie_word_embeddings=True)
        self.model = GPT2LMHeadModel(config)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx, use_cache=False).logits


def train_for(model: torch.nn.Module, loader: TokenWindows, seconds: float
              ) -> tuple[int, float]:
    """(steps, training tokens per second) within ``seconds``."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}], lr=3e-3, betas=(0.9, 0.99))
    model.train()
    start, steps, timed_from, tokens = time.perf_counter(), 0, None, 0
    epoch = 0
    while time.perf_counter() - start < seconds:
        loader.set_epoch(epoch)
        for batch in loader.iterate(0):
            for group in opt.param_groups:
                group["lr"] = 3e-3 * min(1.0, (steps + 1) / 100)
            logits = model(batch[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            steps += 1
            if steps == 5:
                timed_from = time.perf_counter()
            elif steps > 5:
                tokens += batch[:, 1:].numel()
            if time.perf_counter() - start >= seconds:
                break
        epoch += 1
    return steps, tokens / (time.perf_counter() - timed_from)


@torch.no_grad()
def generation_speed(generate, prompt: torch.Tensor, new: int, repeats: int = 3) -> float:
    generate(prompt, 8)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate(prompt, new)
        best = min(best, time.perf_counter() - t0)
    return new / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="training time per model")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()

    corpus = load_corpus("austen", download=False)
    tokenizer = CharTokenizer.train(corpus.train)
    train = torch.tensor(tokenizer.encode(corpus.train))
    val = torch.tensor(tokenizer.encode(corpus.val))
    chars_per_token = len(corpus.val) / len(val)
    prompt = val[:16][None]
    rows = {}
    for name in ("deepatlas GPT", "transformers GPT2LMHeadModel"):
        torch.manual_seed(0)
        if name.startswith("deepatlas"):
            model = GPT(GPTConfig(tokenizer.vocab_size, CONTEXT, D_MODEL, HEADS, LAYERS))

            def generate(p, n, model=model):
                return model.generate(p, n, temperature=1.0)
        else:
            model = HFAdapter(tokenizer.vocab_size)

            def generate(p, n, model=model):
                return model.model.generate(p, max_new_tokens=n, min_new_tokens=n,
                                            do_sample=True, top_k=0, use_cache=True,
                                            pad_token_id=0)
        loader = TokenWindows(train, BATCH, CONTEXT, seed=0)
        steps, tokens_per_s = train_for(model, loader, args.seconds)
        total, count = held_out_loss(model, val, CONTEXT, 64)
        model.eval()
        rows[name] = {"params": sum(p.numel() for p in model.parameters()), "steps": steps,
                      "train_tokens_per_s": tokens_per_s,
                      "val_nats_per_char": total / count / chars_per_token,
                      "generate_tokens_per_s": generation_speed(generate, prompt, CONTEXT - 16)}
        print(name, rows[name], flush=True)
    import transformers

    path = write_result(args.out, "gpt-peer", {
        "seconds": args.seconds, "batch": BATCH, "context": CONTEXT, "layers": LAYERS,
        "d_model": D_MODEL, "heads": HEADS, "vocab": tokenizer.vocab_size,
        "transformers": transformers.__version__, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
