"""Search runs an answer as `pgrpo eval` runs it: a LiveCodeBench LeetCode answer written on the starter
code (`nums: List[int]`, no import) gets the loader's `program_prefix` imports, as LCB's grader and
`pgrpo.prompting.program_for` give it, on the visible tests during search and on the hidden tests after."""

from __future__ import annotations

from pathlib import Path

from pgrpo.prompting import program_for
from pgrpo.search.prompts import split_answer
from pgrpo.search.tasks import load_tasks
from pgrpo.types import Sample

LCB = f"livecodebench:{Path(__file__).parent / 'fixtures' / 'livecodebench_small.jsonl'}"
REPLY = """The pairs are few: count them directly.

```python
class Solution:
    def countPairs(self, nums: List[int], target: int) -> int:
        return sum(
            nums[i] + nums[j] < target for i in range(len(nums)) for j in range(i + 1, len(nums))
        )
```
"""


def test_a_leetcode_answer_runs_with_the_lcb_imports_in_search_as_in_eval(executor):
    ((task, hidden),) = [(t, h) for t, h in load_tasks(LCB) if t.id == "2917"]
    assert "from typing import *" in hidden.metadata["program_prefix"]
    _, code = split_answer(task, REPLY)
    searched, scored = executor.map([(task.problem, code), (hidden, code)])
    (evaluated,) = executor.map([(hidden, program_for(hidden, Sample(id=hidden.id, completion=REPLY)))])
    assert evaluated.passed, evaluated.message
    assert searched.passed, searched.message  # the visible tests, during search
    assert scored.passed, scored.message  # the hidden tests, the selected answer's final score
    assert not any(t in task.problem.tests for t in hidden.tests)  # still no hidden test in search
