"""Report labels per language, from reports/i18n/<lang>.json (every label lives there)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGS = ("zh-CN", "en")
_DIR = Path(__file__).parent / "i18n"


class Labels:
    """Looks labels up by key; `t("key", n=3)` fills `{n}` placeholders."""

    def __init__(self, lang: str, table: dict[str, str]) -> None:
        self.lang = lang
        self._table = table

    def __call__(self, key: str, **fields: object) -> str:
        try:
            text = self._table[key]
        except KeyError:
            raise KeyError(f"reports/i18n/{self.lang}.json has no label {key!r}") from None
        return text.format(**fields) if fields else text

    def get(self, key: str, default: str) -> str:
        return self._table.get(key, default)

    def keys(self) -> set[str]:
        return set(self._table)


def labels(lang: str) -> Labels:
    if lang not in LANGS:
        raise ValueError(f"report language {lang!r} is not supported; use one of {list(LANGS)}")
    return Labels(lang, _load(lang))


@cache
def _load(lang: str) -> dict[str, str]:
    path = _DIR / f"{lang}.json"
    table = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f"{path}: expected an object of string labels")
    return table
