"""A GGUF model's tokenizer and chat template through llama-cpp-python, without its weights: what the
`llamacpp` backend tokenizes with, and what `has_chat_template` and search's token counter read."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class GGUFTokenizer:
    """The GGUF's vocabulary and chat template, loaded without weights (milliseconds).

    Callable like a transformers tokenizer (`tok(text, add_special_tokens=...)["input_ids"]`), so
    `has_chat_template` and search's token counter treat it as one."""

    def __init__(self, llama_cpp: Any, model: Any) -> None:
        from pgrpo.llm.llamacpp import _context_length

        self._llama_cpp = llama_cpp
        self._model = model  # the vocabulary lives in it
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_ctx_train = _context_length(llama_cpp, model)
        """The model's training context (from the metadata: a vocab-only load leaves n_ctx_train at 0)."""
        template = llama_cpp.llama_model_chat_template(model, None)
        self.chat_template: str | None = template.decode() if template else None
        self.bos_token = self._piece(llama_cpp.llama_vocab_bos(self._vocab))
        self.eos_token = self._piece(llama_cpp.llama_vocab_eos(self._vocab))
        self._compiled = None

    @classmethod
    def from_file(cls, path: str | Path, verbose: bool = False) -> GGUFTokenizer:
        """The tokenizer of the .gguf file `path`, without its weights."""
        from pgrpo.llm.llamacpp import _import_llama_cpp, _load_model, _quiet

        lib = _import_llama_cpp()
        _quiet(verbose)
        lib.llama_backend_init()
        tokenizer = cls(lib, _load_model(lib, Path(path), vocab_only=True))
        return tokenizer

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        text = self._llama_cpp.llama_vocab_get_text(self._vocab, token)
        return text.decode("utf-8", "replace") if text else ""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Special tokens written in the text (`<|im_start|>`) become their ids, as transformers does."""
        data = text.encode("utf-8")
        size = len(data) + 8
        buffer = (self._llama_cpp.llama_token * size)()
        n = self._llama_cpp.llama_tokenize(
            self._vocab, data, len(data), buffer, size, add_special_tokens, True
        )
        if n < 0:  # more tokens than bytes + 8 cannot happen for byte-level vocabularies, but be safe
            size = -n
            buffer = (self._llama_cpp.llama_token * size)()
            n = self._llama_cpp.llama_tokenize(
                self._vocab, data, len(data), buffer, size, add_special_tokens, True
            )
        return list(buffer[:n])

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text, add_special_tokens)}

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The template rendered as transformers renders it: a sandboxed jinja2 environment with
        trim_blocks/lstrip_blocks, `raise_exception`, a non-escaping `tojson`, and the special tokens."""
        if self.chat_template is None:
            raise ValueError("this model has no chat template: pass plain string prompts instead")
        if self._compiled is None:
            self._compiled = _compile_template(self.chat_template)
        return self._compiled.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )


def _compile_template(template: str) -> Any:
    import json
    from datetime import datetime

    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: Any = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)
