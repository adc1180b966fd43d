"""The vLLM backend: offline batched generation with `vllm.LLM` on a CUDA machine.

All prompts of a call go to the engine at once (it schedules them itself). Plain strings go through
`LLM.generate`, message lists through `LLM.chat` (the model's chat template). Greedy requests ask for one
completion and repeat it n times, since vLLM rejects or wastes n > 1 at temperature 0.
vLLM is not a dependency of pgrpo: install it on the GPU machine (`pip install vllm`).
"""

from __future__ import annotations

from typing import Any

from pgrpo.llm import Completion, Prompt, SamplingParams, is_chat, truncate_at_stop
from pgrpo.options import UsageError

INSTALL_HINT = (
    "--backend vllm: vLLM is not installed: `pip install vllm` on a machine with a CUDA GPU, "
    "or use --backend transformers (any machine) or --backend openai (a running server)"
)


class VLLMMissing(UsageError, ImportError):
    """The user chose a backend this machine lacks: one line from pgrpo's main (a UsageError), and still
    an ImportError for Python callers that catch one."""


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise VLLMMissing(INSTALL_HINT) from None
    return vllm


def _completion(output: Any, stop: tuple[str, ...]) -> Completion:
    """A vLLM CompletionOutput as a Completion: its text up to a stop string, and why it ended."""
    kept = truncate_at_stop(output.text, stop)
    limited = output.finish_reason == "length" and kept == output.text
    return Completion(kept, "length" if limited else "stop")


class VLLMGenerator:
    """`Generator` over `vllm.LLM`; `engine_options` go to `vllm.LLM` (e.g. `tensor_parallel_size`,
    `gpu_memory_utilization`, `max_model_len`, `dtype`)."""

    def __init__(self, model: str, *, name: str | None = None, seed: int = 0, **engine_options: Any) -> None:
        self._vllm = _import_vllm()
        self.name = name or model
        self.llm = self._vllm.LLM(model=model, seed=seed, **engine_options)

    def _sampling_params(self, params: SamplingParams) -> Any:
        return self._vllm.SamplingParams(
            n=1 if params.greedy else params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            seed=params.seed,
        )

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[str]]:
        sampling = self._sampling_params(params)
        chats = [i for i, p in enumerate(prompts) if is_chat(p)]
        plain = [i for i, p in enumerate(prompts) if not is_chat(p)]
        outputs: dict[int, Any] = {}
        if plain:
            done = self.llm.generate([prompts[i] for i in plain], sampling, use_tqdm=True)
            outputs.update(zip(plain, done))
        if chats:
            done = self.llm.chat([prompts[i] for i in chats], sampling, use_tqdm=True)
            outputs.update(zip(chats, done))
        results = []
        for i in range(len(prompts)):
            texts = [_completion(c, params.stop) for c in outputs[i].outputs]
            results.append(texts * params.n if params.greedy else texts)
        return results

    def __repr__(self) -> str:
        return f"VLLMGenerator({self.name!r})"
