"""The README's Python runs as written (on the embedded sample, to keep it quick)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code.replace("data.load()", 'data.load("tiny")'), str(README), "exec"), {})
