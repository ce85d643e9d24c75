"""``deepatlas generate`` and ``deepatlas translate``: the language runs (MAP 6.2) at work."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepatlas.errors import UserError
from deepatlas.outputs import check_output, write_via_temp


def add_parsers(sub) -> None:
    p = sub.add_parser("generate", help="continue a prompt with a trained language model",
                       description="Sample a continuation from a language-model run (MAP 6.2) "
                       "with a KV cache; past the context, the window slides. A character the "
                       "tokeniser never saw becomes <unk> (char) or its bytes (bpe).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="a language-model run directory or checkpoint")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-tokens", type=int, default=200, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="divides the logits; 0 = always the most likely token")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest")
    p.add_argument("--top-p", type=float, default=None,
                   help="sample among the smallest set whose probability reaches p")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling")

    p = sub.add_parser("translate", help="translate English to Spanish with a trained run",
                       description="Translate with a translation run (MAP 6.2): the text given, "
                       "or a file of one sentence a line (--file in.txt --out hyp.txt, for "
                       "sacrebleu hyp.txt -i ref.txt).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="a translation run directory or checkpoint")
    p.add_argument("text", nargs="?", help="the English text")
    p.add_argument("--file", help="a UTF-8 file, one sentence a line")
    p.add_argument("--out", help="write the translations here, one a line")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--beam", type=int, default=4, help="beam size; 1 = greedy")



def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from deepatlas.tasks.language_model import load_generator

    checks = [(args.prompt != "", "empty prompt: give the text to continue, e.g. --prompt "
                                  "'It is a truth'"),
              (args.max_tokens >= 1, f"--max-tokens must be >= 1, got {args.max_tokens}"),
              (args.temperature >= 0, f"--temperature must be >= 0 (0: always the most likely "
                                      f"token), got {args.temperature}"),
              (args.top_k is None or args.top_k >= 1, f"--top-k must be >= 1, got {args.top_k}"),
              (args.top_p is None or 0 < args.top_p <= 1,
               f"--top-p must be in (0, 1], got {args.top_p}"),
              (0 <= args.seed < 2**63, f"--seed must be in [0, 2^63), got {args.seed}")]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    model, tokenizer, _ = load_generator(args.run)
    prompt = torch.tensor([tokenizer.encode(args.prompt)])  # (1, T)
    out = model.generate(prompt, args.max_tokens, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p,
                         generator=torch.Generator().manual_seed(args.seed))
    print(args.prompt + tokenizer.decode(out[0, prompt.shape[1]:].tolist()))
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from deepatlas.data.translation import encode_source
    from deepatlas.tasks.translation import load_translator, translate_ids

    if (args.text is None) == (args.file is None):
        raise UserError("give the English text to translate, or --file FILE (one sentence a "
                        "line), not both")
    if args.beam < 1:
        raise UserError(f"--beam must be >= 1, got {args.beam}")
    if args.text is not None:
        lines = [args.text]
    else:
        try:
            lines = Path(args.file).read_text("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise UserError(f"{args.file} is not UTF-8 text (byte {exc.start}); convert it, "
                            "e.g. iconv -f latin1 -t utf-8") from None
        except OSError as exc:
            raise UserError(f"cannot read {args.file}: {exc.strerror}") from None
    if not any(line.strip() for line in lines):
        raise UserError("nothing to translate: the text is empty")
    model, tokenizer, max_len = load_translator(args.run)
    src = [encode_source(tokenizer, line, max_len) for line in lines]
    out = [tokenizer.decode(ids) for ids in translate_ids(model, src, max_len, args.beam)]
    if args.out:
        path = check_output(args.out, args.force)
        write_via_temp(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in out),
                                                        "utf-8"))
        print(f"wrote {len(out)} lines to {args.out}")
    else:
        print("\n".join(out))
    return 0
