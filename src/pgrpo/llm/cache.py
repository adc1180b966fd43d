"""An on-disk cache in front of any Generator, so reruns and resumed runs pay only for what is missing.

One entry per (model name, prompt, sampling params without n, sample index): asking for n=8 after n=4
reuses the four and generates four more, and the n samples of a prompt stay n distinct entries.
Each prompt's completions are written as soon as they are done: a backend that reports them one by
one (`on_result`, as the transformers backend does per batch and the openai backend per request) loses
only the requests in flight to an interruption; any other is asked a chunk of prompts at a time and
loses at most one chunk. Each entry is its own JSON file, `<dir>/ab/cd/<sha256>.json`,
written to a temporary file and renamed into place: several processes can share one directory.

Limits: the key trusts `Generator.name` to identify the weights (rename a retrained model, or use a
fresh directory); outputs that depend on things outside the key (dtype, engine version) are not told apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from pgrpo.llm import Generator, Prompt, SamplingParams, takes_on_result


class CachedGenerator:
    """A `Generator` that answers from `cache_dir` where it can and asks `inner` for the rest."""

    def __init__(self, inner: Generator, cache_dir: str | os.PathLike, chunk_size: int = 64) -> None:
        """chunk_size: prompts per call to `inner`; results are saved after each call."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.inner = inner
        self.name = inner.name
        self.dir = Path(cache_dir)
        self.chunk_size = chunk_size
        self.hits = 0
        """Completions answered from disk, over this object's life."""
        self.misses = 0
        """Completions that had to be generated."""

    @staticmethod
    def _settings(params: SamplingParams) -> dict:
        return {k: v for k, v in params.to_dict().items() if k != "n"}

    def key(self, prompt: Prompt, params: SamplingParams, index: int) -> str:
        """sha256 of (model name, prompt, params without n, sample index)."""
        settings = self._settings(params)
        blob = json.dumps(
            {"model": self.name, "prompt": prompt, "params": settings, "index": index},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / key[2:4] / f"{key}.json"

    def _load(self, key: str) -> str | None:
        try:
            with open(self._path(key), encoding="utf-8") as f:
                return json.load(f)["text"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # a damaged entry is regenerated and overwritten

    def _store(self, key: str, entry: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f, ensure_ascii=False)
            os.replace(tmp, path)  # atomic: readers see the old state or the whole entry
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _save(self, prompt: Prompt, params: SamplingParams, index: int, text: str) -> None:
        entry = {
            "model": self.name,
            "prompt": prompt,
            "params": self._settings(params),
            "index": index,
            "text": text,
        }
        self._store(self.key(prompt, params, index), entry)

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[str]]:
        results: list[list[str | None]] = []
        missing: dict[int, list[int]] = {}  # prompt position -> sample indices to generate
        for i, prompt in enumerate(prompts):
            texts = [self._load(self.key(prompt, params, j)) for j in range(params.n)]
            results.append(texts)
            gaps = [j for j, t in enumerate(texts) if t is None]
            if gaps:
                missing[i] = gaps
        self.misses += sum(len(g) for g in missing.values())
        self.hits += len(prompts) * params.n - sum(len(g) for g in missing.values())

        # One call per (count, first missing index). A fresh prompt asks with the caller's seed, so the
        # cache does not change what a run samples; a partly cached prompt asks with a shifted seed,
        # or a seeded backend would hand back copies of the samples already stored.
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, gaps in missing.items():
            groups[len(gaps), gaps[0]].append(i)
        streams = takes_on_result(self.inner)
        for (count, first), members in groups.items():
            ask = replace(params, n=count, seed=params.seed + first)
            for start in range(0, len(members), self.chunk_size):
                chunk = members[start : start + self.chunk_size]

                def save(
                    position: int, texts: list[str], chunk: list[int] = chunk, count: int = count
                ) -> None:
                    """Store prompt `chunk[position]`'s texts (once: on arrival, or after the call)."""
                    i = chunk[position]
                    if len(texts) != count:
                        raise RuntimeError(f"{self.inner!r} returned {len(texts)} texts, expected {count}")
                    if all(results[i][j] is not None for j in missing[i]):
                        return  # already saved through on_result
                    for j, text in zip(missing[i], texts):
                        self._save(prompts[i], params, j, text)
                        results[i][j] = text

                asked = [prompts[i] for i in chunk]
                if streams:
                    fresh = self.inner.generate(asked, ask, on_result=save)
                else:
                    fresh = self.inner.generate(asked, ask)
                for position, texts in enumerate(fresh):
                    save(position, texts)
        return results  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"CachedGenerator({self.inner!r}, {str(self.dir)!r}, hits={self.hits}, misses={self.misses})"
