"""The pages' languages, and the shape of a table of texts in them."""

from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
# A text by its key, in each language.
Texts = dict[str, dict[Lang, str]]
