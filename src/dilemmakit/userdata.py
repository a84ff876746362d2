"""Files a user hands the toolkit (behaviors, labelled data, training examples, configs), read one way.

Text is UTF-8 with or without a byte-order mark: Excel's "CSV UTF-8" starts the file with one, and it
must not become part of the first column's name. JSON nested deeper than the parser can follow is a
malformed value (a `json.JSONDecodeError` the caller already reports in one line), not a RecursionError
from inside the parser.
"""

from __future__ import annotations

import json
from typing import Any

ENCODING = "utf-8-sig"  # decodes plain UTF-8 too; drops a leading BOM


def loads_json(text: str) -> Any:
    """`json.loads`, with nesting too deep to parse raised as a `json.JSONDecodeError`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
