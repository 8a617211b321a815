"""Text from the service, shown by Streamlit (which reads Markdown) as text."""

from __future__ import annotations

import re

# Markdown's special characters, Streamlit's maths ($) and colour directives (:red[...]
# needs its brackets); line breaks, which would start a new block (a heading, a list).
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~$&])")
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def plain(text: str) -> str:
    """`text` shown as it is: its special characters escaped, on one line."""
    return _SPECIAL.sub(r"\\\1", _BREAKS.sub(" ", text))
